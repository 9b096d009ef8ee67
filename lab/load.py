"""Steady HTTP load from the lab's client (``lab/http_load.py``), with counts per phase."""

import json
import pathlib
import signal
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).with_name("http_load.py")


class ClientLoad:
    """Requests *urls* in turn from host *client* of *lab* until :meth:`stop`."""

    def __init__(self, lab, urls, client="client"):
        self.process = lab.popen(client, [sys.executable, str(SCRIPT), *urls], stdout=subprocess.PIPE, text=True)
        if self.process.stdout.readline().strip() != "ready":
            self.process.kill()
            raise RuntimeError("the HTTP load did not start")

    def counts(self):
        """The counts so far: ``{"requests": N, "failures": N, "examples": [...]}``."""
        self.process.send_signal(signal.SIGUSR1)
        return json.loads(self.process.stdout.readline())

    def stop(self):
        """Stop the load and return the final counts."""
        self.process.terminate()
        line = self.process.stdout.readline()
        self.process.wait(timeout=30)
        self.process.stdout.close()
        return json.loads(line)
