"""The baseline of the throughput bar: a bare FastAPI endpoint, served like the broker."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/hello")
def hello() -> dict[str, str]:
    return {"hello": "world"}
