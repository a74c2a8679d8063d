#!/usr/bin/env bash
# Install the optional `mmdet` GenEval detector backend (mmdet 3.3.0 on mmcv 2.1.0
# with compiled ops) into an existing Python environment that already has torch.
#
#   scripts/install_mmdet.sh [PYTHON]      # default: the `python` on PATH
#
# Why a script: mmcv 2.1.0 (the newest release mmdet 3.3.0 accepts, mmcv<2.2) has no
# wheel for current torch, and its source build asks for -std=c++17 while torch>=2.10
# headers need C++20. A compiler wrapper rewrites the flag. The build takes about
# 15 minutes on 2 cores; pip caches the wheel, so later installs on the same machine
# take seconds.
set -euo pipefail

PY=${1:-python}
MMENGINE_VERSION=0.10.7
MMCV_VERSION=2.1.0
MMDET_VERSION=3.3.0

"$PY" -c "import torch" 2>/dev/null || {
  echo "error: $PY cannot import torch; install torch first (see README)" >&2
  exit 2
}

wrapper_dir=$(mktemp -d)
trap 'rm -rf "$wrapper_dir"' EXIT
real_cxx=$(command -v g++ || command -v c++) || { echo "error: no C++ compiler (g++) found" >&2; exit 2; }
cat > "$wrapper_dir/cxx20" <<WRAP
#!/usr/bin/env bash
# Pass every argument through, with any older -std=c++NN raised to c++20.
args=()
for arg in "\$@"; do
  case "\$arg" in
    -std=c++11|-std=c++14|-std=c++17|-std=gnu++14|-std=gnu++17) args+=("-std=c++20") ;;
    *) args+=("\$arg") ;;
  esac
done
exec "$real_cxx" "\${args[@]}"
WRAP
chmod +x "$wrapper_dir/cxx20"

# mmcv 2.1.0's setup.py imports pkg_resources, which setuptools 81 removed.
"$PY" -m pip install "setuptools>=69,<81" wheel ninja "mmengine==$MMENGINE_VERSION"
# --no-build-isolation: mmcv's setup.py imports the installed torch to build its ops.
CC="$wrapper_dir/cxx20" CXX="$wrapper_dir/cxx20" LDSHARED="$wrapper_dir/cxx20 -shared" \
  MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-2}" \
  "$PY" -m pip install --no-build-isolation "mmcv==$MMCV_VERSION"
"$PY" -m pip install "mmdet==$MMDET_VERSION"

"$PY" - <<'CHECK'
import mmcv
import mmdet
from mmcv.ops import MultiScaleDeformableAttention  # noqa: F401  (needs the compiled ops)
print(f"mmdet {mmdet.__version__} on mmcv {mmcv.__version__}: compiled ops load")
CHECK
