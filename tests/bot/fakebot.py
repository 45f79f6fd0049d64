"""Run the real bot CLI (``upscaler_edge.bot.cli.main``) against a TcpFakeServer.

Used by test_subprocess.py to run the bot as a real process that can be killed with SIGKILL.
Environment: ``FAKETG_PORT`` (the server's port on 127.0.0.1), optionally ``FAKEBOT_HOLD``
(a marker path: the first job to report progress creates it and then hangs, so that the test
can kill the process mid-job; once the marker exists, jobs run normally).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))


def main() -> int:
    from faketg import attach_remote

    from upscaler_edge.bot import app, cli

    address = ("127.0.0.1", int(os.environ["FAKETG_PORT"]))
    hold = os.environ.get("FAKEBOT_HOLD")

    def factory(config: Any) -> Any:
        return attach_remote(app.make_client(config), address)

    async def runner(config: Any, *, stop: Any) -> None:
        core = app.Core.load(config)
        base = core.upscale

        def upscale(src: Path, dst: Path, options: Any, *, progress: Any, **kw: Any) -> Any:
            def held_progress(done: int, total: int) -> None:
                progress(done, total)
                if hold and not Path(hold).exists():
                    Path(hold).write_text(str(os.getpid()))
                    time.sleep(3600)  # "mid-job": the test kills us here

            return base(src, dst, options, progress=held_progress, **kw)

        core.upscale = upscale
        try:
            await app.run_bot(
                config, stop=stop, client_factory=factory, core=core, backoff=(0.1, 1.0)
            )
        finally:
            core.close()

    return cli.main(sys.argv[1:], runner=runner)


if __name__ == "__main__":
    sys.exit(main())
