// The search page: plain DOM calls only. Every text from the server goes in through
// textContent / createTextNode, never as HTML, so a document cannot inject markup or script.
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_SHOWN = 1200; // characters of a document shown in a result
// Korean particles: "지하철을" in a query should still mark "지하철" in a text.
const PARTICLES = ["에서", "으로", "은", "는", "이", "가", "을", "를", "에", "의", "로", "와", "과", "도"];
const HANGUL = /[\uac00-\ud7a3]/u;
// Marking every "the" and "of" hides the words that matter.
const STOPWORDS = new Set("a an and are as at be by for from in is it of on or the to was with".split(" "));

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").classList.toggle("error", Boolean(isError));
}

// Words of the query worth marking: letters/digits runs of 2+ characters, plus particle-less stems.
function queryTerms(query) {
  const terms = new Set();
  for (const word of query.toLowerCase().match(/[\p{L}\p{N}]+/gu) || []) {
    if (word.length >= 2) terms.add(word);
    if (HANGUL.test(word) && word.length >= 3) {
      const particle = PARTICLES.find((p) => word.endsWith(p));
      if (particle) terms.add(word.slice(0, -particle.length));
    }
  }
  return [...terms].filter((t) => t.length >= 2 && !STOPWORDS.has(t)).sort((a, b) => b.length - a.length);
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// Appends ``text`` to ``parent`` with every query term wrapped in <mark>.
function appendHighlighted(parent, text, terms) {
  if (!terms.length) { parent.appendChild(document.createTextNode(text)); return; }
  const pattern = new RegExp(terms.map(escapeRegExp).join("|"), "giu");
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index > last) parent.appendChild(document.createTextNode(text.slice(last, match.index)));
    parent.appendChild(el("mark", "", match[0]));
    last = match.index + match[0].length;
  }
  if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
}

const hasCosine = (hit) => hit.cosine !== null && hit.cosine !== undefined;
const hasBm25 = (hit) => hit.bm25 !== null && hit.bm25 !== undefined;

// What the score is (docs/hybrid.md): only lexical hits lack a cosine, only hybrid ones can carry both.
function scoreMeaning(hit) {
  if (!hasCosine(hit)) return "BM25 (lexical mode)";
  if (hasBm25(hit) || hit.score !== hit.cosine) {
    return "relevance 0-1, comparable across queries: cosine and BM25 blended (1: the query itself)";
  }
  return "cosine";
}

function renderHit(hit, terms) {
  const item = el("li", "hit");
  item.dataset.id = hit.id;
  item.dataset.score = String(hit.score);
  const meta = el("div", "meta");
  const score = el("span", "score", hit.score.toFixed(3));
  score.title = scoreMeaning(hit);
  meta.append(el("span", "rank", "#" + hit.rank), el("br"), score);
  const parts = [];
  if (hasCosine(hit)) parts.push("cos " + hit.cosine.toFixed(3));
  if (hasBm25(hit)) parts.push("bm25 " + hit.bm25.toFixed(2));
  if (parts.length) meta.append(el("br"), el("span", "sides", parts.join(" · ")));
  if (hasCosine(hit)) { // dense and hybrid scores are 0-1 (a cosine below 0 shows empty); BM25 has no top
    const bar = el("div", "bar");
    const fill = el("span");
    fill.style.width = Math.max(0, Math.min(1, hit.score)) * 100 + "%";
    bar.appendChild(fill);
    meta.appendChild(bar);
  }
  const body = el("div", "body");
  body.appendChild(el("div", "id", hit.id));
  const text = el("p", "text");
  const shown = hit.text.length > MAX_SHOWN ? hit.text.slice(0, MAX_SHOWN) + "…" : hit.text;
  appendHighlighted(text, shown, terms);
  body.appendChild(text);
  if (hit.metadata && Object.keys(hit.metadata).length) {
    body.appendChild(el("div", "extra", JSON.stringify(hit.metadata)));
  }
  item.append(meta, body);
  return item;
}

async function search(query, index, k, mode, where) {
  const results = $("results");
  results.dataset.state = "loading";
  setStatus("Searching…");
  const params = new URLSearchParams({ query, k });
  if (mode) params.set("mode", mode);
  if (where) params.set("where", where);
  const url = `/indexes/${encodeURIComponent(index)}/search?` + params;
  const started = performance.now();
  let answer;
  try {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    answer = await response.json();
    if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  } catch (error) {
    results.replaceChildren();
    results.dataset.state = "error";
    setStatus("Error: " + error.message, true);
    return;
  }
  const roundTrip = performance.now() - started;
  const terms = queryTerms(query);
  results.replaceChildren(...answer.hits.map((hit) => renderHit(hit, terms)));
  results.dataset.state = "done";
  const count = answer.hits.length;
  setStatus(`${count} result${count === 1 ? "" : "s"} from ${index} in ${answer.took_ms.toFixed(1)} ms ` +
            `(server), ${roundTrip.toFixed(1)} ms round trip`);
}

function runFromForm() {
  const query = $("q").value.trim();
  const index = $("index").value;
  const k = $("k").value;
  const mode = $("mode").value;
  const where = $("where").value.trim();
  if (!query || !index) return;
  const shown = new URLSearchParams({ q: query, index, k });
  if (mode) shown.set("mode", mode);
  if (where) shown.set("where", where);
  history.replaceState(null, "", "?" + shown);
  search(query, index, k, mode, where);
}

async function start() {
  const params = new URLSearchParams(location.search);
  let indexes;
  try {
    const response = await fetch("/indexes");
    indexes = (await response.json()).indexes;
  } catch (error) {
    setStatus("Cannot list the indexes: " + error.message, true);
    return;
  }
  const picker = $("index");
  for (const info of indexes) {
    const option = el("option", "", `${info.name} (${info.count} docs)`);
    option.value = info.name;
    picker.appendChild(option);
  }
  if (params.get("index")) picker.value = params.get("index");
  const k = Number(params.get("k"));
  if (Number.isInteger(k) && k >= 1 && k <= 100) {
    if (![...$("k").options].some((o) => o.value === String(k))) $("k").appendChild(el("option", "", String(k)));
    $("k").value = String(k);
  }
  if (!picker.value && picker.options.length) picker.selectedIndex = 0; // an unknown ?index=
  if (["dense", "lexical", "hybrid"].includes(params.get("mode"))) $("mode").value = params.get("mode");
  if (params.get("where")) $("where").value = params.get("where");
  $("search").addEventListener("submit", (event) => { event.preventDefault(); runFromForm(); });
  picker.addEventListener("change", runFromForm);
  if (params.get("q")) {
    $("q").value = params.get("q");
    runFromForm();
  } else {
    setStatus(indexes.length ? "Type a query and press Enter." : "No index is served.");
  }
}

start();
