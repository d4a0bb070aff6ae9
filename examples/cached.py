"""A FastAPI-style caching decorator over qcache, with psycopg 3.

    @cached(conn, ttl=300, tags=lambda cat: [f"category:{cat}"])
    def category_stats(cat: int):
        return "SELECT count(*) AS products, avg(price) AS avg_price " \
               "FROM products WHERE category_id = $1"

category_stats(7) runs the query once, then serves it from the cache until
a committed write to products (watched) or to category:7 invalidates it.
The key is derived from the query and the arguments; qcache checks the
caller's privileges on every hit.
"""
import functools
import json

import psycopg


def cached(conn, ttl=None, tags=None, json_rows=True):
    """Cache the rows of the SELECT the function returns, with its
    arguments as $1, $2, ... values: never formatted into the SQL."""
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args):
            sql = fn(*args)
            row = conn.execute(
                "SELECT qcache_fetch_json(NULL, %s, %s, %s, %s)::text",
                (sql, ttl, tags(*args) if tags else None,
                 [None if a is None else str(a) for a in args])).fetchone()
            return json.loads(row[0]) if json_rows else row[0]
        wrapper.invalidate = lambda *args: conn.execute(
            "SELECT qcache_invalidate_tag(%s)", (tags(*args)[0],))
        return wrapper
    return decorate
