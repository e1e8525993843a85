"""The MCP server, driven by the official `mcp` SDK's own client: over stdio (`simsearch mcp`)
and over streamable HTTP (`/mcp` of `simsearch serve`); English and Korean queries, a bad
filter as a tool error, texts cut to a stated length, writes only when allowed and behind the
token."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pytest

pytest.importorskip("mcp", reason="needs simsearch[mcp]")

import httpx2  # noqa: E402  (the HTTP client the mcp SDK uses)
from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.types import TextContent  # noqa: E402

from tests.server.helpers import Server, build_indexes, server_env, start_server  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TOKEN = "mcp-test-token"


def text(result: Any) -> str:
    """The message of a tool result (a tool error carries one text item)."""
    (item,) = result.content
    assert isinstance(item, TextContent)
    return item.text


READ_TOOLS = {"search", "get_documents", "list_indexes", "describe_index"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, bundled_encoder: Any) -> Path:
    home = tmp_path_factory.mktemp("mcp-home")
    build_indexes(home, bundled_encoder)
    return home


def stdio(home: Path, *options: str) -> Client:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "SIMSEARCH_CACHE", "TMPDIR")}
    env.update(PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    command = ["-m", "simsearch", "mcp", "docs", "korean", "--index-dir", str(home), *options]
    return Client(StdioServerParameters(command=sys.executable, args=command, env=env, cwd=str(REPO)))


@pytest.fixture(scope="module")
def http_server(home: Path) -> Iterator[Server]:
    running = start_server(
        home,
        ["docs", "korean"],
        "--allow-writes",
        "--token-env",
        "SIMSEARCH_TEST_MCP_TOKEN",
        log=home / "server.log",
        env=server_env(SIMSEARCH_TEST_MCP_TOKEN=TOKEN),
    )
    yield running
    assert running.stop() == 0, running.stderr()


async def check_reads(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert READ_TOOLS <= set(tools)
    schema = tools["search"].input_schema
    assert {"index", "query", "k", "mode", "where"} <= set(schema["properties"]) and "query" in schema[
        "required"
    ]

    english = await client.call_tool("search", {"index": "docs", "query": "keeping bread fresh", "k": 3})
    assert not english.is_error
    hits = english.structured_content["hits"]
    assert hits[0]["id"] == "bread" and {"score", "cosine", "bm25", "metadata", "text"} <= set(hits[0])

    korean = await client.call_tool(
        "search", {"index": "docs", "query": "서울 지하철", "k": 2, "mode": "dense"}
    )
    assert korean.structured_content["hits"][0]["id"] == "ko-subway"

    filtered = await client.call_tool(
        "search", {"index": "docs", "query": "cooking", "k": 5, "where": {"lang": "ko"}}
    )
    assert {h["metadata"]["lang"] for h in filtered.structured_content["hits"]} == {"ko"}

    bad = await client.call_tool("search", {"index": "docs", "query": "cat", "where": {"lang": {"~": "en"}}})
    assert bad.is_error and "operator" in text(bad) and "\n" not in text(bad)
    missing = await client.call_tool("search", {"index": "nope", "query": "cat"})
    assert missing.is_error and "not served here" in text(missing)

    listed = (await client.call_tool("list_indexes", {})).structured_content["indexes"]
    assert [(i["name"], i["count"]) for i in listed] == [("docs", 8), ("korean", 3)]
    described = (await client.call_tool("describe_index", {"index": "korean"})).structured_content
    assert described["modes"] == ["dense", "lexical", "hybrid"] and "model_path" not in described["manifest"]
    got = (
        await client.call_tool("get_documents", {"index": "docs", "ids": ["xss", "gone"]})
    ).structured_content
    assert got["missing"] == ["gone"] and got["documents"][0]["id"] == "xss"


async def test_stdio_reads_and_cut_texts(home: Path) -> None:
    async with stdio(home) as client:
        assert "add_documents" not in {t.name for t in (await client.list_tools()).tools}
        await check_reads(client)
    async with stdio(home, "--max-text", "20") as client:
        got = await client.call_tool("get_documents", {"index": "docs", "ids": ["xss"]})
        (doc,) = got.structured_content["documents"]
        assert len(doc["text"]) == 20 and doc["truncated"] is True and doc["text_length"] > 20
        assert got.structured_content["max_text"] == 20


async def test_stdio_writes_when_allowed(tmp_path: Path, bundled_encoder: Any) -> None:
    build_indexes(tmp_path, bundled_encoder)
    async with stdio(tmp_path, "--allow-writes") as client:
        added = await client.call_tool(
            "add_documents",
            {
                "index": "korean",
                "documents": [{"id": "new", "text": "한국어 문장 검색 엔진", "metadata": {"n": 1}}],
            },
        )
        assert not added.is_error and added.structured_content["stats"]["added"] == 1
        deleted = await client.call_tool("delete_documents", {"index": "korean", "ids": ["new", "ko-stew"]})
        assert deleted.structured_content["stats"]["deleted"] == 2
        listed = (await client.call_tool("list_indexes", {})).structured_content["indexes"]
        assert listed[1] == {**listed[1], "name": "korean", "count": 2}


async def http_client(url: str, token: str | None = None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with Client(streamable_http_client(url + "/mcp", http_client=http)) as client:
            yield client


async def test_http_reads_and_token_guarded_writes(http_server: Server) -> None:
    assert f"MCP (streamable HTTP) at {http_server.url}/mcp" in http_server.stderr()
    async for client in http_client(http_server.url):
        await check_reads(client)
        refused = await client.call_tool("delete_documents", {"index": "docs", "ids": ["cat"]})
        assert refused.is_error and "Authorization: Bearer" in text(refused)
    async for client in http_client(http_server.url, "wrong"):
        refused = await client.call_tool("delete_documents", {"index": "docs", "ids": ["cat"]})
        assert refused.is_error and "wrong bearer token" in text(refused)
    async for client in http_client(http_server.url, TOKEN):
        done = await client.call_tool("delete_documents", {"index": "korean", "ids": ["ko-weather"]})
        assert not done.is_error and done.structured_content["stats"]["deleted"] == 1
        listed = (await client.call_tool("list_indexes", {})).structured_content["indexes"]
        assert [i["count"] for i in listed] == [8, 2]


async def test_boolean_where_in_process(home: Path) -> None:
    from simsearch.integrations.mcp import OpenedIndexes, create_mcp

    catalog = OpenedIndexes(["docs"], str(home))
    try:
        async with Client(create_mcp(catalog)) as client:
            where = {"$or": [{"topic": "transit"}, {"$not": {"lang": "en"}, "topic": "cooking"}]}
            got = await client.call_tool("search", {"index": "docs", "query": "food", "k": 8, "where": where})
            assert not got.is_error, text(got)
            assert sorted(h["id"] for h in got.structured_content["hits"]) == ["ko-stew", "ko-subway"]
    finally:
        catalog.close()
