"""Register iris_model.joblib in blockchain_data.json, then verify it (the seed demo)."""

import sys
from pathlib import Path

try:
    from modelchain.use.seed import main
except ImportError:  # run from a checkout without installing: use ./src
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
    from modelchain.use.seed import main

if __name__ == "__main__":
    sys.exit(main())
