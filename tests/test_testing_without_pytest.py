"""scripts/local-cluster and kafkapy.testing work where pytest is not installed (`pip install -e .` alone)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs in a fresh interpreter (argv: the script, a tmp dir) in which importing pytest fails
# as if it were not installed.
CHILD = textwrap.dedent(
    """
    import contextlib
    import io
    import runpy
    import sys
    from pathlib import Path

    class NoPytest:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in ("pytest", "_pytest"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoPytest())
    script, tmp = sys.argv[1], Path(sys.argv[2])

    # The script imports everything it needs before argparse answers --help.
    sys.argv = ["local-cluster", "--help"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        runpy.run_path(script, run_name="__main__")
    assert "--brokers" in out.getvalue(), out.getvalue()

    from kafkapy.local_cluster import LocalCluster, wait_until
    from kafkapy.testing import BrokerFactory, free_port

    assert LocalCluster(tmp / "cluster", 1).size == 1
    assert free_port() > 0
    broker = BrokerFactory(tmp / "brokers")()
    try:
        assert wait_until(lambda: broker.running, timeout=5, what="broker running")
    finally:
        assert broker.stop() == 0
    assert not [m for m in sys.modules if m.partition(".")[0] in ("pytest", "_pytest")]
    print("ok")
    """
)


def test_local_cluster_script_and_broker_processes_need_no_pytest(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT / "scripts" / "local-cluster"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == "ok"
