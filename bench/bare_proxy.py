"""The floor: the least any Tornado proxy does (check a key, parse the JSON, rewrite the model,
forward, stream back), with the HTTP client, event loop and JSON functions cliproxyd uses
(Tornado's libcurl client, which keeps upstream connections alive; uvloop; cliproxyd.jsontext).
Not a product; the benchmark's reference.  Usage: ``python bench/bare_proxy.py PORT
UPSTREAM_URL KEY [simple]`` (``simple``: the defaults instead, Tornado's own HTTP client on
asyncio's loop and the standard library's json, as in the floor the issue quotes; about 1.6x
slower, mostly for want of upstream keep-alive)."""

import asyncio
import hmac
import json
import sys

from tornado import httpclient, web

from cliproxyd import jsontext
from cliproxyd.cli import event_loop_factory

PORT, UPSTREAM, KEY = int(sys.argv[1]), sys.argv[2], sys.argv[3]
SIMPLE = sys.argv[4:] == ["simple"]
loads, dumps = (json.loads, json.dumps) if SIMPLE else (jsontext.loads, jsontext.dumps_bytes)
if not SIMPLE:
    httpclient.AsyncHTTPClient.configure("tornado.curl_httpclient.CurlAsyncHTTPClient")


class Chat(web.RequestHandler):
    async def post(self) -> None:
        given = self.request.headers.get("Authorization", "")[7:]
        if not hmac.compare_digest(given.encode(), KEY.encode()):
            raise web.HTTPError(401)
        body = loads(self.request.body)
        body["model"] = "up-" + body["model"]
        stream = body.get("stream") is True

        def relay(chunk: bytes) -> None:
            self.write(chunk)
            self.flush()

        def on_header(line: str) -> None:
            if line.lower().startswith("content-type:"):
                self.set_header("Content-Type", line.split(":", 1)[1].strip())

        response = await client.fetch(
            UPSTREAM + "/v1/chat/completions", method="POST", body=dumps(body),
            headers={"Content-Type": "application/json", "Authorization": "Bearer upstream"},
            streaming_callback=relay if stream else None, header_callback=on_header,
            request_timeout=3600, raise_error=False)
        self.set_status(response.code)
        if not stream:
            self.write(response.body)


async def main() -> None:
    global client
    client = httpclient.AsyncHTTPClient(max_clients=2000)
    web.Application([(r"/v1/chat/completions", Chat)]).listen(PORT, "127.0.0.1")
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=asyncio.new_event_loop if SIMPLE else event_loop_factory()[1]) as runner:
        runner.run(main())
