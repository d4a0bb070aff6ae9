"""Runs examples/cached.py against a server: python3 demo_cached.py DSN.
Prints what each call returned and whether it came from the cache; exits
non-zero if a value is stale or the cache did not serve a repeat call."""
import sys

import psycopg

from cached import cached

conn = psycopg.connect(sys.argv[1], autocommit=True)


def stats():
    return dict(zip(("hits", "misses"), conn.execute(
        "SELECT hits, misses FROM qcache_stats").fetchone()))


@cached(conn, ttl=300, tags=lambda cat: [f"category:{cat}"])
def category_stats(cat):
    return ("SELECT count(*) AS products, sum(price) AS total "
            "FROM products WHERE category_id = $1")


before = stats()
first = category_stats(7)
again = category_stats(7)
after = stats()
print("first:", first, "again:", again, "hits:", after["hits"] - before["hits"])
assert first == again == [{"products": 2, "total": 12.5}], first
assert after["hits"] - before["hits"] == 1, "the repeat call was not a hit"

# a committed write to a watched table: the next call recomputes
conn.execute("UPDATE products SET price = price + 1 WHERE category_id = 7")
fresh = category_stats(7)
print("after the update:", fresh)
assert fresh == [{"products": 2, "total": 14.5}], fresh

# another category is another key and another entry
assert category_stats(9) == [{"products": 1, "total": 4.1}]
print("ok")
