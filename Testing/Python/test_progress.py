"""Console progress: a tqdm bar on a terminal, sparse plain lines in logs (batch jobs, pipes, Dask workers)."""

import io
import os
import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from SpineMetsCore.progress import console_progress, line_progress

REPO = Path(__file__).resolve().parents[2]


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class ProgressTest(unittest.TestCase):
    def test_log_stream_gets_a_line_per_tenth_and_no_carriage_returns(self):
        log = io.StringIO()
        update, close = console_progress("features", stream=log)
        for done in range(1001):
            update(done, 1000)
        close()
        text = log.getvalue()
        self.assertNotIn("\r", text)
        lines = text.splitlines()
        self.assertEqual(len(lines), 11)
        percents = [int(re.search(r"\((\d+)%\)", line).group(1)) for line in lines]
        self.assertEqual(percents, list(range(0, 101, 10)))
        self.assertTrue(lines[0].startswith("features: 0/1000 case (0%), 0s elapsed"), lines[0])
        self.assertTrue(lines[-1].startswith("features: 1000/1000 case (100%)"), lines[-1])

    def test_few_steps_each_get_one_line_and_slow_work_a_heartbeat(self):
        log = io.StringIO()
        update, _ = line_progress("train-seg", unit="epoch", stream=log)
        for done in range(4):
            update(done, 3)
        self.assertEqual(log.getvalue().splitlines()[1:], [
            "train-seg: 1/3 epoch (33%), 0s elapsed, ETA 0s",
            "train-seg: 2/3 epoch (67%), 0s elapsed, ETA 0s",
            "train-seg: 3/3 epoch (100%), 0s elapsed",
        ])

        log, clock = io.StringIO(), FakeClock()
        update, _ = line_progress("run", stream=log, interval=60.0, clock=clock)
        for done in range(0, 31):  # 1 % of the work every 20 s: ten minutes, 3 % done
            update(done, 1000)
            clock.now += 20.0
        lines = log.getvalue().splitlines()
        # the 0 % line, then one each minute (not one per update): bounded by elapsed / interval
        self.assertEqual(len(lines), 1 + 10)
        self.assertEqual(lines[3], "run: 9/1000 case (1%), 3m00s elapsed, ETA 5h30m")
        update(30, 1000)  # nothing new: no repeated line
        self.assertEqual(len(log.getvalue().splitlines()), 11)

    def test_terminal_gets_the_tqdm_bar(self):
        term = FakeTerminal()
        update, close = console_progress("phantom", stream=term)
        for done in range(3):
            update(done, 2)
        close()
        self.assertIn("\r", term.getvalue())
        self.assertIn("2/2", term.getvalue())

    def test_cli_progress_redirected_to_a_log_file_is_plain_lines(self):
        with tempfile.TemporaryDirectory() as tmp:
            log_path = Path(tmp) / "job.log"
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "SpineMetsSegment"),
                                                                  str(REPO / "SpineMetsClassifier")])}
            with log_path.open("w") as log:
                proc = subprocess.run([sys.executable, "-m", "SpineMetsApp.cli", "phantom", "--out", str(Path(tmp) / "cohort"),
                                       "--cases", "2"], stdout=subprocess.PIPE, stderr=log, env=env, timeout=300)
            self.assertEqual(proc.returncode, 0, log_path.read_text())
            text = log_path.read_text(encoding="utf-8")
            self.assertNotIn("\r", text)
            progress = [line for line in text.splitlines() if line.startswith("phantom: ")]
            self.assertEqual([line.split(" (")[0] for line in progress],
                             ["phantom: 1/2 case", "phantom: 2/2 case"])


if __name__ == "__main__":
    unittest.main()
