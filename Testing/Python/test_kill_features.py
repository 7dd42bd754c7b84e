"""SIGKILL of ``spinemets features --workers 2`` mid-run, then a re-run.

Checks what a user on a shared server sees after ``kill -9`` (or an OOM kill):
no worker process or multiprocessing resource tracker left running, the re-run
resumes from the per-case cache and says so, no ``.part`` temporaries remain
(including ones a kill mid-write would leave), and the table is byte-identical
to an uninterrupted run's.
"""

import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("badinputs", HERE / "badinputs.py")
badinputs = sys.modules.setdefault("badinputs", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(badinputs)


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


def live_processes_in_group(pgid: int) -> list[tuple[int, str]]:
    """(pid, command) of non-zombie processes whose process group is ``pgid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        state, group = fields[0], int(fields[2])
        if group == pgid and state not in ("Z", "X"):
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                cmd = "?"
            found.append((int(entry.name), cmd))
    return found


@unittest.skipUnless(sys.platform.startswith("linux"), "process-group inspection via /proc")
class KillFeaturesTest(unittest.TestCase):
    def test_sigkill_then_rerun(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            manifest = badinputs.make_cohort(root / "cohort", cases=6, seed=21)
            out = root / "run" / "features.csv"
            cache = out.with_name(out.stem + ".cache")
            argv = [sys.executable, "-m", "SpineMetsApp.cli", "features", "--manifest", str(manifest), "--out", str(out),
                    "--workers", "2", "--no-progress"]
            proc = subprocess.Popen(argv, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and proc.poll() is None:
                if cache.is_dir() and any(p.name.endswith(".json") and ".part" not in p.name for p in cache.iterdir()):
                    break
                time.sleep(0.05)
            self.assertIsNone(proc.poll(), "the run finished before it could be killed; use more cases")
            workers_before = live_processes_in_group(proc.pid)
            self.assertGreaterEqual(len(workers_before), 3, workers_before)  # parent + 2 workers (+ tracker)
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=60)
            deadline = time.monotonic() + 30
            while live_processes_in_group(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            self.assertEqual(live_processes_in_group(proc.pid), [], "orphans after SIGKILL")
            self.assertFalse(out.exists())
            done_before = sorted(p.name for p in cache.iterdir() if ".part" not in p.name)
            self.assertTrue(0 < len(done_before) < 6, done_before)

            # what a kill in the middle of a write leaves behind
            (cache / f".{done_before[0]}.x1y2.part.json").write_text('{"version": 2, "key": "trunc')
            (out.parent / f".{out.name}.a1b2.part.csv").write_text("case_id,err\n")

            rerun = subprocess.run(argv, env=cli_env(), capture_output=True, text=True, timeout=900)
            self.assertEqual(rerun.returncode, 0, rerun.stderr)
            self.assertIn(f"resuming: {len(done_before)} case(s) from the cache", rerun.stderr)
            self.assertNotIn(badinputs.TRACEBACK, rerun.stderr)
            leftovers = [p for p in root.rglob("*") if ".part" in p.name or p.name.startswith(".spinemets-probe")]
            self.assertEqual(leftovers, [])

            clean = root / "clean" / "features.csv"
            fresh = subprocess.run([*argv[:7], str(clean), "--workers", "2", "--no-cache", "--no-progress"],
                                   env=cli_env(), capture_output=True, text=True, timeout=900)
            self.assertEqual(fresh.returncode, 0, fresh.stderr)
            self.assertEqual(out.read_bytes(), clean.read_bytes())

            # running it again without --overwrite refuses and leaves the table alone
            again = subprocess.run(argv, env=cli_env(), capture_output=True, text=True, timeout=300)
            self.assertEqual(again.returncode, 2)
            self.assertIn("already exists", again.stderr)
            self.assertEqual(out.read_bytes(), clean.read_bytes())


if __name__ == "__main__":
    unittest.main()
