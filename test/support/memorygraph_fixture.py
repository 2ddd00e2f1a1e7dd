"""
Drives memorygraph's own code (memorygraphmcp 0.12.4, in .tools/memorygraph-venv)
for memshift's tests: `populate` writes memories and relationships into a store
the way the memory server does; `dump` reads a store back through memorygraph's
own backends and prints what it sees as JSON (ids, timestamps, types: what the
tests compare). The backend is chosen the way the server chooses it, from env
(MEMORY_BACKEND, MEMORY_SQLITE_PATH, FALKORDB_HOST/PORT, MEMORY_NEO4J_URI/USER/PASSWORD;
MEMSHIFT_FALKORDB_GRAPH picks a FalkorDB graph other than memorygraph's fixed one).

usage: python memorygraph_fixture.py populate --memories N --relationships M --seed S
       python memorygraph_fixture.py dump
"""
import argparse
import asyncio
import json
import os
import sys
import uuid
from datetime import datetime, timedelta, timezone

os.environ.setdefault("MEMORY_ALLOW_CYCLES", "true")

from memorygraph.backends._falkordb_shared import BaseFalkorDBBackend  # noqa: E402
from memorygraph.cli import _create_backend_and_db  # noqa: E402
from memorygraph.models import (  # noqa: E402
    Memory,
    MemoryContext,
    MemoryType,
    RelationshipProperties,
    RelationshipType,
)

NAMESPACE = uuid.UUID("5b0c7e0e-3f0a-4f55-9d3c-6d2f1f3b9a11")
TYPES = list(MemoryType)
RELATIONSHIP_TYPES = list(RelationshipType)
EPOCH = datetime(2024, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


def memory_id(seed: str, i: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{seed}/memory/{i}"))


def make_memory(seed: str, i: int) -> Memory:
    context = None
    if i % 3 == 0:
        context = MemoryContext(
            project_path=f"/srv/project-{i % 5}",
            languages=["python", "typescript"],
            additional_metadata={"ticket": f"T-{i}", "nested": {"level": i % 4}},
        )
    return Memory(
        id=memory_id(seed, i),
        type=TYPES[i % len(TYPES)],
        title=f"Mémoire {i} — 記憶 {seed}",
        content=f"Content {i}: naïve café ✓ 🧠 line one\nline two \"quoted\" {seed}",
        summary=f"summary {i}" if i % 2 == 0 else None,
        tags=[f"tag{i % 7}", "mémoire"],
        context=context,
        importance=round(0.1 + (i % 9) / 10, 2),
        confidence=0.75,
        effectiveness=0.5 if i % 4 == 0 else None,
        usage_count=i % 11,
        # Back-dated: memorygraph's own import loses these.
        created_at=EPOCH + timedelta(minutes=i),
    )


async def open_store():
    """The server's backend; on FalkorDB its own methods (memorygraph's Cypher wrapper cannot create relationships there)."""
    backend, name, db = await _create_backend_and_db()
    graph = os.environ.get("MEMSHIFT_FALKORDB_GRAPH")
    if graph and isinstance(backend, BaseFalkorDBBackend):
        # memorygraph always opens graph 'memorygraph'; tests keep several graphs in one server.
        backend.graph_name = graph
        backend.graph = backend.client.select_graph(graph)
    return backend, name, backend if isinstance(backend, BaseFalkorDBBackend) else db


async def populate(args: argparse.Namespace) -> dict:
    backend, name, db = await open_store()
    commit = getattr(backend, "commit", None)
    if args.one_transaction and commit:
        # memorygraph's own writes, committed once at the end instead of per memory (benchmark-sized stores).
        backend.commit = lambda: None
    try:
        if hasattr(db, "initialize_schema"):
            await db.initialize_schema()
        ids = []
        for i in range(args.offset, args.offset + args.memories):
            ids.append(await db.store_memory(make_memory(args.seed, i)))
        rel_ids = []
        all_ids = [memory_id(args.seed, i) for i in range(0, args.offset + args.memories)]
        for k in range(args.relationships):
            source = ids[k % len(ids)]
            target = all_ids[(k * 7 + 1) % len(all_ids)]
            if target == source:
                target = all_ids[(k * 7 + 2) % len(all_ids)]
            if k % 9 == 4:
                # A cycle: the edge back from the previous edge's target (same type).
                source, target = target, source
            props = RelationshipProperties(
                strength=round(0.3 + (k % 7) / 10, 2),
                confidence=0.9,
                context=f"why {k} — ✓" if k % 2 == 0 else None,
                evidence_count=1 + k % 3,
                validation_count=k % 4,
                counter_evidence_count=k % 2,
            )
            if k % 5 == 0:
                props.valid_from = EPOCH - timedelta(days=k)
            if k % 10 == 3:
                # A superseded fact: closed validity, recorded late, pointing at its successor.
                props.valid_until = EPOCH + timedelta(days=1)
                props.recorded_at = EPOCH + timedelta(hours=k)
                props.invalidated_by = str(uuid.uuid5(NAMESPACE, f"{args.seed}/superseded-by/{k}"))
            rel_ids.append(
                await db.create_relationship(
                    from_memory_id=source,
                    to_memory_id=target,
                    relationship_type=RELATIONSHIP_TYPES[k % len(RELATIONSHIP_TYPES)],
                    properties=props,
                )
            )
        if args.one_transaction and commit:
            commit()
        return {"backend": name, "memories": ids, "relationships": rel_ids}
    finally:
        await backend.disconnect()


async def relationships_of(backend, db) -> list:
    """Every relationship with its id and bi-temporal fields, read through memorygraph's own connection."""
    if hasattr(backend, "execute_sync"):
        rows = backend.execute_sync(
            "SELECT id, from_id, to_id, rel_type, valid_from, invalidated_by, properties FROM relationships ORDER BY id"
        )
        return [
            {"id": r["id"], "from": r["from_id"], "to": r["to_id"], "type": r["rel_type"], "valid_from": r["valid_from"],
             "invalidated_by": r["invalidated_by"], "created_at": json.loads(r["properties"]).get("created_at")}
            for r in rows
        ]
    query = (
        "MATCH (a:Memory)-[r]->(b:Memory) RETURN r.id AS id, a.id AS from_id, b.id AS to_id, "
        "type(r) AS rel_type, r.valid_from AS valid_from, r.invalidated_by AS invalidated_by, r.created_at AS created_at ORDER BY r.id"
    )
    run = db.execute_read_query if hasattr(db, "execute_read_query") else backend.execute_query
    rows = await run(query, {})
    return [
        {"id": r["id"], "from": r["from_id"], "to": r["to_id"], "type": r["rel_type"], "valid_from": str(r["valid_from"]),
         "invalidated_by": r["invalidated_by"], "created_at": r["created_at"]}
        for r in rows
    ]


async def dump(args: argparse.Namespace) -> dict:
    backend, name, db = await open_store()
    try:
        relationships = await relationships_of(backend, db)
        ids = sorted({r["from"] for r in relationships} | {r["to"] for r in relationships} | set(args.ids or []))
        memories = {}
        related = {}
        for mid in ids:
            memory = await db.get_memory(mid, include_relationships=False)
            if memory is None:
                memories[mid] = None
                continue
            memories[mid] = {
                "type": memory.type.value,
                "title": memory.title,
                "created_at": memory.created_at.isoformat(),
                "updated_at": memory.updated_at.isoformat(),
                "tags": memory.tags,
                "project_path": memory.context.project_path if memory.context else None,
            }
            try:
                related[mid] = len(await db.get_related_memories(mid, max_depth=1))
            except Exception as error:  # memorygraph 0.12.4's graph traversals fail on its own data too
                print(f"get_related_memories failed: {error}", file=sys.stderr)
                related[mid] = None
        return {"backend": name, "memories": memories, "relationships": relationships, "related": related}
    finally:
        await backend.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("populate")
    p.add_argument("--memories", type=int, default=60)
    p.add_argument("--relationships", type=int, default=157)
    p.add_argument("--seed", default="s")
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--one-transaction", action="store_true")
    d = sub.add_parser("dump")
    d.add_argument("--ids", nargs="*")
    args = parser.parse_args()
    result = asyncio.run(populate(args) if args.command == "populate" else dump(args))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
