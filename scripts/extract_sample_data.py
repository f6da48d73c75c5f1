"""Extract the offline sample data from the `arch` package into data/sample/.

Run once, by hand, in an environment that has `arch` installed (it is not a dependency of
finscale):

    pip install arch==8.0.0 && python scripts/extract_sample_data.py

It writes three gzip-compressed CSV files with a fixed gzip header (mtime 0), so that running it
again reproduces the committed bytes:

- GSPC.csv.gz: S&P 500 index daily bars (Date, Open, High, Low, Close, Volume). The bundled
  "Adj Close" column equals Close on every row (an index pays no dividends) and is dropped.
- IXIC.csv.gz: NASDAQ Composite index daily bars, the same columns and the same treatment as
  GSPC.csv.gz.
- VIX.csv.gz: VIX index daily closes (Date, Close). Rows with no value (US market holidays)
  are dropped.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pandas as pd

OUT_DIR = Path(__file__).resolve().parents[1] / "data" / "sample"


def _write_csv_gz(frame: pd.DataFrame, path: Path) -> None:
    text = frame.to_csv(index=False, date_format="%Y-%m-%d", lineterminator="\n")
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(text.encode())


def _index_bars(loaded: pd.DataFrame, label: str) -> pd.DataFrame:
    """Date, Open, High, Low, Close, Volume of an index in Yahoo's layout."""
    if not (loaded["Adj Close"] == loaded["Close"]).all():
        raise SystemExit(
            f"arch's {label} 'Adj Close' differs from 'Close'; review before dropping it"
        )
    return loaded[["Open", "High", "Low", "Close", "Volume"]].rename_axis("Date").reset_index()


def main() -> None:
    import arch.data.nasdaq
    import arch.data.sp500
    import arch.data.vix

    gspc = _index_bars(arch.data.sp500.load(), "S&P 500")
    ixic = _index_bars(arch.data.nasdaq.load(), "NASDAQ")

    vix = arch.data.vix.load().rename(columns={"vix": "Close"}).rename_axis("Date").reset_index()
    holidays = int(vix["Close"].isna().sum())
    vix = vix.dropna(subset=["Close"])

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, frame in (("GSPC.csv.gz", gspc), ("IXIC.csv.gz", ixic), ("VIX.csv.gz", vix)):
        path = OUT_DIR / name
        _write_csv_gz(frame, path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        first, last = frame["Date"].iloc[0].date(), frame["Date"].iloc[-1].date()
        print(f"{name}: {len(frame)} rows, {first} .. {last}, sha256 {digest}")
    print(f"VIX: dropped {holidays} rows without a value")


if __name__ == "__main__":
    main()
