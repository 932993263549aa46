import atexit
import os
import shutil
import tempfile

os.environ.setdefault("MESHSTYLE_QUIET", "1")
# One cache per test session: tests neither read the user's ~/.cache/meshstyle (a stale or foreign
# entry would hide a bug) nor fill it. Set before meshstyle is imported; CLI subprocesses inherit it.
TEST_CACHE = tempfile.mkdtemp(prefix="meshstyle-test-cache-")
os.environ["MESHSTYLE_CACHE"] = TEST_CACHE
atexit.register(shutil.rmtree, TEST_CACHE, ignore_errors=True)

import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
