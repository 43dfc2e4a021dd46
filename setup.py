# The build step of `pip install .` (pyproject.toml): configures the repository with CMake
# (-DWANRT_PYTHON=ON, no tests), builds the one target _wanrt, and places it in the package
# python/wanrt. Environment: WANRT_CMAKE_ARGS (extra -D options, e.g. "-DWANRT_CUDA=ON
# -DWANRT_ARCH=x86-64-v3"), WANRT_BUILD_DIR (default build-python/ in the repo, kept between
# installs so rebuilds are incremental), WANRT_JOBS (parallel jobs; default all cores). CUDA is
# built when /usr/local/cuda/bin/nvcc exists, as scripts/test.sh does.
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
(ROOT / "build-python").mkdir(exist_ok=True)  # egg_base below must exist


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = Path(os.environ.get("WANRT_BUILD_DIR") or ROOT / "build-python").resolve()
        cuda = "ON" if os.path.exists("/usr/local/cuda/bin/nvcc") else "OFF"
        configure = [
            "cmake", "-S", str(ROOT), "-B", str(build), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
            "-DWANRT_TESTS=OFF", "-DWANRT_PYTHON=ON", f"-DWANRT_CUDA={cuda}",
            # The interpreter pip runs (a venv's works: FindPython takes the headers of its base).
            f"-DPython_EXECUTABLE={sys.executable}",
        ] + shlex.split(os.environ.get("WANRT_CMAKE_ARGS", ""))
        subprocess.check_call(configure)
        jobs = os.environ.get("WANRT_JOBS") or str(os.cpu_count() or 1)
        subprocess.check_call(["cmake", "--build", str(build), "--target", "_wanrt", "-j", jobs])
        built = sorted((build / "python" / "wanrt").glob("_wanrt*.so"))
        if not built:
            sys.exit(f"setup.py: the build left no _wanrt*.so in {build / 'python' / 'wanrt'}")
        out = Path(self.get_ext_fullpath(ext.name))
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built[0], out)


setup(
    packages=["wanrt"],
    package_dir={"": "python"},
    ext_modules=[CMakeExtension("wanrt._wanrt")],
    cmdclass={"build_ext": CMakeBuild},
    # setuptools' own work files away from the CMake build/ folder.
    options={"build": {"build_base": "build-python/setuptools"}, "egg_info": {"egg_base": "build-python"}},
)
