"""Start local processes, wait for health, show log tails on failure, stop them by pid."""
import os
import signal
import socket
import subprocess
import time
import urllib.request


def free_port():
    """A port the OS says is free now (bind to 0). Small race, fine for tests on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port, host="127.0.0.1"):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


class StartupError(RuntimeError):
    pass


class Proc:
    """A child process with its log in a file; `stop()` kills its whole process group."""

    def __init__(self, name, argv, log_path, env=None, cwd=None):
        self.name = name
        self.log_path = str(log_path)
        self._log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
            start_new_session=True)

    @property
    def pid(self):
        return self.popen.pid

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def alive(self):
        return self.popen.poll() is None

    def wait_http(self, url, timeout=30.0, ok=lambda status: status < 500):
        """Poll url until it answers with a status ok() accepts; raise with the log tail if not."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise StartupError(f"{self.name} exited with {self.popen.returncode}; log tail:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if ok(resp.status):
                        return
                    last = resp.status
            except urllib.error.HTTPError as e:
                if ok(e.code):
                    return
                last = e.code
            except OSError as e:
                last = e
            time.sleep(0.1)
        raise StartupError(f"{self.name} not healthy at {url} after {timeout}s (last: {last}); log tail:\n{self.log_tail()}")

    def stop(self):
        if self.alive():
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(timeout=5)
        self._log.close()
