"""The source-size curve: transfer gain over scratch vs how many source images the backbone learned from, with the
permuted-pixel control beside it; and the claims that read the curve (how large A must be relative to B, and
whether a source without spatial structure transfers at all)."""
from __future__ import annotations

import pandas as pd

from transferlab.analysis.claims import FAILS, HOLDS, INCONCLUSIVE, Claim, arm, guard, judge, pct, strategy_diff
from transferlab.params.backbones import CONTROL_BACKBONE, CURVE_PREFIX, WHOLE_SOURCE

SOURCE_CURVE_FILE = "source_curve.csv"


def is_curve_backbone(name: str) -> bool:
    return name.startswith(CURVE_PREFIX) and name[len(CURVE_PREFIX):].isdigit()


def curve_table(runs: pd.DataFrame, source_images: dict[str, int], main: str, strategy: str, num_classes: int,
                confidence: float) -> pd.DataFrame:
    """A row per backbone of the curve (src-<n>, src-full as the whole source, the control) and pool size
    the curve was fine-tuned at: its source images, its accuracy under `strategy` and its gain over the main
    backbone's scratch runs, paired by seed (the same pool draws)."""
    names = [b for b in dict.fromkeys(runs["backbone"]) if is_curve_backbone(b) or b in (WHOLE_SOURCE, CONTROL_BACKBONE)]
    curve_sizes = sorted({int(n) for n in runs.loc[runs["backbone"].map(is_curve_backbone) |
                                                   (runs["backbone"] == CONTROL_BACKBONE), "per_class"]})
    rows = []
    for name in names:
        for n in curve_sizes:
            d = strategy_diff(runs, (name, strategy), (main, "scratch"), n, confidence)
            acc = runs[(runs["backbone"] == name) & (runs["strategy"] == strategy) & (runs["per_class"] == n)]
            if d is None or acc.empty:
                continue
            rows.append({"backbone": name, "control": name == CONTROL_BACKBONE,
                         "source_images": int(source_images.get(name, 0)), "per_class": n,
                         "target_images": n * num_classes, "strategy": strategy,
                         "accuracy": float(acc["accuracy"].mean()), "gain": d.mean, "gain_low": d.low,
                         "gain_high": d.high, "seeds": d.n})
    columns = ["backbone", "control", "source_images", "per_class", "target_images", "strategy", "accuracy", "gain",
               "gain_low", "gain_high", "seeds"]
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values(["per_class", "control", "source_images"], kind="stable").reset_index(drop=True)


def curve_metrics(table: pd.DataFrame) -> dict:
    """DVC metrics: per curve pool size, each backbone's source images and gain over scratch with its CI."""
    out: dict = {}
    for r in table.itertuples():
        out.setdefault(f"n{r.per_class}", {})[r.backbone] = {
            "source_images": int(r.source_images), "control": bool(r.control),
            **{k: round(float(getattr(r, k)), 4) for k in ("gain", "gain_low", "gain_high")}}
    return {"source_curve": out} if out else {}


def significant_from(table: pd.DataFrame, min_effect: float) -> int | None:
    """The smallest source size from which every larger one (up to the whole source) gains significantly."""
    curve = table[~table["control"]].sort_values("source_images")
    from_size = None
    for r in curve[::-1].itertuples():
        if not (r.seeds >= 2 and r.gain_low > 0 and r.gain >= min_effect):
            break
        from_size = int(r.source_images)
    return from_size


def _gains(curve: pd.DataFrame) -> str:
    return "; ".join(f"{r.source_images:,}: {r.gain * 100:+.1f} pp [{r.gain_low * 100:+.1f}, {r.gain_high * 100:+.1f}]"
                     for r in curve.itertuples())


def curve_claims(runs: pd.DataFrame, table: pd.DataFrame, main: str, min_effect: float,
                 confidence: float) -> list[Claim]:
    """Per pool size of the curve: where the gain becomes significant relative to B's size, and whether the
    permuted-pixel control gains nothing."""
    claims = []
    for n, at in table.groupby("per_class"):
        n = int(n)
        b_images = int(at["target_images"].iloc[0])
        curve = at[~at["control"]].sort_values("source_images")
        strategy = str(at["strategy"].iloc[0])
        where = f"n={n}/class ({b_images:,} B images), {strategy} − scratch by source images"
        if len(curve) >= 2:
            start = significant_from(at, min_effect)
            smallest = int(curve["source_images"].iloc[0])
            statement = (f"A must be larger than B: at n={n}/class the gain over scratch becomes significant only "
                         f"once the source has more images than B")
            if start is None:
                verdict, said = INCONCLUSIVE, "no source size gains significantly up to the whole source"
            elif start <= b_images:
                verdict, said = FAILS, f"significant already from {start:,} source images ({start / b_images:.1f}× B)"
            elif start == smallest:
                verdict, said = INCONCLUSIVE, (f"significant from the smallest source tried, {start:,} images "
                                               f"({start / b_images:.1f}× B): no source as small as B was tried")
            else:
                verdict, said = HOLDS, (f"significant from {start:,} source images ({start / b_images:.1f}× B), "
                                        "not below")
            claims.append(guard(Claim(f"source_size_n{n}", statement, verdict, f"{said}. {where}: {_gains(curve)}"),
                                runs, [arm(b, strategy, n) for b in curve["backbone"]] + [arm(main, "scratch", n)]))
        control = at[at["control"]]
        if not control.empty:
            d = strategy_diff(runs, (CONTROL_BACKBONE, strategy), (main, "scratch"), n, confidence)
            full = curve.iloc[-1] if len(curve) else None
            # "No gain" is the claim: it holds when the CI rules out a gain of min_effect, fails when the gain is
            # significant.
            if d is None or d.n < 2:
                verdict = INCONCLUSIVE
            elif d.high < min_effect:
                verdict = HOLDS
            else:
                verdict = FAILS if judge(d, min_effect) == HOLDS else INCONCLUSIVE
            versus = (f"; the unpermuted source ({int(full.source_images):,} images): {full.gain * 100:+.1f} pp"
                      if full is not None else "")
            claims.append(guard(Claim(
                f"permuted_control_n{n}", f"A source without spatial structure (every image's pixels permuted the "
                f"same way, as many images) gives no gain at n={n}/class: the low-level spatial features are what "
                "transfers", verdict,
                f"n={n}/class, {CONTROL_BACKBONE} {strategy} − scratch: "
                f"{pct(d) if d is not None else 'no runs'}{versus}"),
                runs, [arm(CONTROL_BACKBONE, strategy, n), arm(main, "scratch", n)]))
    return claims
