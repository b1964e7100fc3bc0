"""The anomaly detectors: ``riskwatch detectors list|train|evaluate``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from monitor.cli.app import EXIT_RULES, _load_pack_or_exit, _read_events, console, err_console, main
from monitor.packs.rulefiles import default_rules_dir

# --- detectors ------------------------------------------------------------------------
@main.group()
def detectors() -> None:
    """Train and evaluate the anomaly detectors of rules/detectors.yaml."""


@detectors.command("list")
@click.option("--rules", type=click.Path(exists=True, file_okay=False, path_type=Path))
def detectors_list(rules):
    """The detectors of the pack: model, scope, key, when it alerts and risk."""
    pack = _load_pack_or_exit(rules)
    t = Table(title=f"Detectors (pack {pack.version})")
    for col in ("detector", "model", "when", "by", "alerts when", "risk", "status"):
        t.add_column(col)
    for d in pack.detectors:
        trained = "" if d.model != "isolation_forest" else (" (trained)" if d.trained is not None else " (not trained)")
        t.add_row(d.id, d.model + trained, d.spec.when, ", ".join(d.by), d.alert_rule,
                  f"{d.risk.id} {d.risk.title_zh}", d.status)
    console.print(t)


@detectors.command("train")
@click.option("--history", "history", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Past events (JSONL, event contract) to learn what is normal from.")
@click.option("--rules", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--detector", "detector_id", default=None, help="Which isolation_forest entry (default: the first).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Model file (default: the entry's model_file, beside detectors.yaml).")
@click.option("--trees", default=100, show_default=True)
@click.option("--seed", default=42, show_default=True)
def detectors_train(history, rules, detector_id, out, trees, seed):
    """Fit the IsolationForest on history and save it (plain arrays, safe to load)."""
    from detectors.modelfile import save_model, train_isolation_forest
    from detectors.payments import FEATURES, training_matrix
    from monitor.core.batch import EventBatch
    from monitor.core.detecting import detector_columns

    rules_dir = rules or default_rules_dir()
    pack = _load_pack_or_exit(rules_dir)
    forests = [d for d in pack.detectors if d.model == "isolation_forest" and (detector_id in (None, d.id))]
    if not forests:
        err_console.print(f"no isolation_forest detector{' ' + detector_id if detector_id else ''} in {rules_dir}/detectors.yaml")
        sys.exit(EXIT_RULES)
    det = forests[0]
    _, events, rejected = _read_events(history)
    batch = EventBatch(events)
    rows = batch.all_rows[det.when.fn(batch, batch.all_rows)]
    if len(rows) < 256:
        err_console.print(f"{history}: only {len(rows)} events match {det.id}'s `when` ({det.spec.when}); need at least 256")
        sys.exit(1)
    matrix = training_matrix(detector_columns(batch, rows, det.by, ("key", "amount", "t", "hour", "weekday", "individual")))
    forest = train_isolation_forest(matrix, n_estimators=trees, seed=seed)
    path = out or Path(rules_dir) / (det.spec.model_file or "models/payment_iforest.npz")
    save_model(path, forest, trained_on=len(rows), source=history.name)
    console.print(f"{det.id}: trained an IsolationForest ({trees} trees) on {len(rows):,} of {len(events):,} events "
                  f"({len(rejected)} rejected lines skipped), features {', '.join(FEATURES)} → {path}")


def _labels(lines: list[bytes], column: str) -> list:
    """The label of each decodable line: a top-level key, or attributes.<key>."""
    import msgspec

    decode = msgspec.json.Decoder().decode
    out = []
    for raw in lines:
        if not raw.strip():
            continue
        try:
            record = decode(raw)
        except msgspec.DecodeError:
            out.append(None)
            continue
        value = record.get(column) if isinstance(record, dict) else None
        if value is None and isinstance(record, dict) and isinstance(record.get("attributes"), dict):
            value = record["attributes"].get(column.removeprefix("attributes."))
        out.append(value)
    return out


def _write_scores(path: Path, rows: list[int], scores: dict, labels) -> int:
    """A CSV of every score given: row (the input's line number), detector, score, label.
    Rows a detector did not score (out of its scope, or a forest's fitting prefix) are
    left out. Returns the lines written."""
    import csv

    import numpy as np

    written = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["row", "detector", "score", "label"])
        for detector, s in scores.items():
            for i in np.flatnonzero(~np.isnan(s)).tolist():
                out.writerow([rows[i], detector, repr(float(s[i])), int(labels[i])])
                written += 1
    return written


def _truthy(v) -> int:
    return int(v is True or (isinstance(v, (int, float)) and v > 0) or str(v).strip().lower() in ("true", "yes", "1", "y"))


@detectors.command("evaluate")
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Labelled events (JSONL, event contract), or a CSV of numeric features.")
@click.option("--label", "label", required=True, help="The label column: true/1/yes = anomalous.")
@click.option("--detector", "detector_ids", multiple=True, help="Only these detectors (repeatable).")
@click.option("--rules", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--k", "k", type=int, default=None, help="k for precision@k (default: the number of positives).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON, not a table.")
@click.option("--scores-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every score given as CSV: row (input line), detector, score, label.")
def detectors_evaluate(input_path, label, detector_ids, rules, k, as_json, scores_out):
    """ROC AUC, PR AUC and precision@k per detector, streaming in order: each event is
    scored before it is learned, as live (no look-ahead)."""
    import numpy as np

    from monitor.analyst.evaluation import evaluate, evaluate_features, event_scores, feature_scores

    if input_path.suffix.lower() == ".csv":
        import pandas as pd

        frame = pd.read_csv(input_path)
        if label not in frame.columns:
            err_console.print(f"{input_path}:1: no column '{label}' (has: {', '.join(frame.columns)})")
            sys.exit(1)
        y = frame.pop(label).map(_truthy).to_numpy()
        numeric = frame.select_dtypes("number")
        matrix = numeric.to_numpy(dtype=float)
        scores, cut = feature_scores(matrix, list(numeric.columns))
        results = evaluate_features(matrix, y, list(numeric.columns), k=k, scores=scores)
        rows = list(range(2, len(frame) + 2))  # line numbers, under the header
        scope = f"{len(frame):,} rows, features {', '.join(numeric.columns)}"
        notes = ["half_space_trees: each row scored before it is learned, its features scaled by the rows before it",
                 f"isolation_forest: fitted on the first {cut:,} rows (lines 2-{cut + 1}), which are left out of its "
                 f"figures; scored on the other {len(frame) - cut:,}"]
    else:
        pack = _load_pack_or_exit(rules)
        lines, events, rejected = _read_events(input_path)
        labels = _labels(lines, label)
        rejected_lines = {r.line for r in rejected}
        numbered = [n for n, raw in enumerate(lines, 1) if raw.strip()]
        rows = [n for n in numbered if n not in rejected_lines]
        y = np.array([_truthy(v) for n, v in zip(numbered, labels) if n not in rejected_lines])
        if not y.any():
            err_console.print(f"{input_path}: no line has a true '{label}' (top level or in attributes)")
            sys.exit(1)
        unknown = set(detector_ids) - {d.id for d in pack.detectors}
        if unknown:
            err_console.print(f"unknown detector(s): {', '.join(sorted(unknown))}")
            sys.exit(1)
        scores = event_scores(pack, events, only=set(detector_ids) or None)
        results = evaluate(pack, events, y, k=k, scores=scores)
        scope = f"{len(events):,} events ({len(rejected)} rejected lines skipped), {int(y.sum()):,} labelled anomalous"
        notes = ["each event scored before it is learned, in file order, as a live detector sees it"]
        notes += [f"{d.id}: its model was trained on {d.trained_meta['source']}, which is this file's name: its figures "
                  "may look ahead" for d in pack.detectors if d.id in scores and d.trained_meta.get("source") == input_path.name]
    if scores_out:
        written = _write_scores(scores_out, rows, scores, y)
        notes.append(f"{written:,} scores written to {scores_out}")
    if as_json:
        import orjson

        plain = [{f: (None if isinstance(v, float) and v != v else v) for f, v in vars(r).items()} for r in results]
        console.print_json(orjson.dumps({"input": str(input_path), "scope": scope, "notes": notes,
                                         "detectors": plain}).decode())
        return
    t = Table(title=f"Detector evaluation — {input_path.name}: {scope}")
    for col in ("detector", "model", "in scope", "positives", "ROC AUC", "PR AUC", "k", "precision@k", "≥ threshold"):
        t.add_column(col, justify="right" if col not in ("detector", "model") else "left")
    fmt = lambda v: "—" if v != v else f"{v:.3f}"  # noqa: E731
    for r in results:
        t.add_row(r.detector, r.model, f"{r.events:,}", f"{r.positives:,}", fmt(r.roc_auc), fmt(r.pr_auc), str(r.k),
                  fmt(r.precision_at_k), "" if r.threshold != r.threshold else f"{r.alerts:,}")
    console.print(t)
    for note in notes:
        console.print(note, markup=False)
