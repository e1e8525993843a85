"""Reading every stored row of an index (plain or sharded), to compare two builds."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import numpy as np

from simsearch import Index


def stored_rows(path: Path) -> dict[str, tuple[str, Any, np.ndarray]]:
    """id -> (text, metadata, vector) of every document, read shard by shard for a sharded index
    (the top manifest lists the shard directories; each is a plain index)."""
    top = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    parts = [path / part["dir"] for part in top["shards"]["parts"]] if "shards" in top else [path]
    rows = {}
    for part in parts:
        index = Index.open(part)  # no model is loaded: only the stored rows are read
        try:
            ids = index.ids()
            documents = {doc.id: doc for doc in index.get(ids)}
            found, vectors = index.get_vectors(ids)
            for n, doc_id in enumerate(found):
                rows[doc_id] = (documents[doc_id].text, documents[doc_id].metadata, vectors[n])
        finally:
            index.close()
    return rows


def assert_same_index(a: Path, b: Path, *, cosine: float = 0.99999) -> None:
    rows_a, rows_b = stored_rows(a), stored_rows(b)
    assert sorted(rows_a) == sorted(rows_b)
    for doc_id, (text, meta, vector) in rows_a.items():
        other = rows_b[doc_id]
        assert (text, meta) == other[:2], doc_id
        assert float(vector @ other[2]) >= cosine, doc_id


def listening_addresses(root: int) -> list[str]:
    """``ip:port`` of every TCP socket listened on by process ``root`` and its descendants
    (Linux: ``/proc``), to check that a local Ray cluster is reachable on loopback only."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo += children.get(pid, [])
    inodes = set()
    for pid in tree:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        inodes |= {link[8:-1] for link in links if link.startswith("socket:[")}
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                address, port = cols[1].split(":")
                found.append(f"{_ip(address)}:{int(port, 16)}")
    return found


def _ip(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))  # four little-endian words
    return socket.inet_ntop(socket.AF_INET6, words)


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0]
    return host in ("127.0.0.1", "::1", "::ffff:127.0.0.1")
