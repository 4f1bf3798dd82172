"""Train Logistic Regression on Iris and save iris_model.joblib here (the seed demo)."""

import sys
from pathlib import Path

try:
    from modelchain.use.seed import train_main
except ImportError:  # run from a checkout without installing: use ./src
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
    from modelchain.use.seed import train_main

if __name__ == "__main__":
    sys.exit(train_main())
