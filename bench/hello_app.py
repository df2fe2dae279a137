"""The honest baseline: a bare FastAPI hello-world, served in its own process.

``bench/bench_assign.py`` serves this next to the real app with the same uvicorn flags, so the
ratios it prints include everything the app adds (middleware, route table, validation, Redis).
"""

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def hello() -> dict[str, str]:
    return {"hello": "world"}
