"""A real IPython kernel driven over ZMQ, as Jupyter drives it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jupyter_client.manager import KernelManager


@dataclass
class Reply:
    status: str
    stdout: str = ""
    stderr: str = ""
    data: list[dict[str, Any]] = field(default_factory=list)
    ename: str = ""
    evalue: str = ""
    traceback: str = ""

    @property
    def text(self) -> str:
        """Everything a person would read in the cell's output."""
        shown = [d.get("text/plain", "") for d in self.data]
        return "\n".join([self.stdout, self.stderr, *shown, self.ename, self.evalue, self.traceback])


class Kernel:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        """A kernel with this process's environment, or ``env`` (all of it) where given."""
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(**({"env": env} if env is not None else {}))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float = 180) -> Reply:
        reply = Reply(status="")

        def on_output(msg: dict[str, Any]) -> None:
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                if content["name"] == "stdout":
                    reply.stdout += content["text"]
                else:
                    reply.stderr += content["text"]
            elif kind in ("display_data", "execute_result", "update_display_data"):
                reply.data.append(content["data"])
            elif kind == "error":
                reply.ename, reply.evalue = content["ename"], content["evalue"]
                reply.traceback = "\n".join(content["traceback"])

        result = self.client.execute_interactive(code, timeout=timeout, output_hook=on_output)
        reply.status = result["content"]["status"]
        if reply.status == "error" and not reply.ename:
            reply.ename = result["content"].get("ename", "")
            reply.evalue = result["content"].get("evalue", "")
        return reply

    def ok(self, code: str, timeout: float = 180) -> Reply:
        reply = self.run(code, timeout)
        assert reply.status == "ok", f"cell failed:\n{code}\n---\n{reply.text}"
        return reply

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=False)
