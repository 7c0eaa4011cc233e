"""Monthly statements (one partition per UTC month) and the overview report."""

import dagster as dg

from pipelines.defs.partitions import MONTHLY
from pipelines.defs.resources import TallyHome
from pipelines.defs.warehouse.assets import warehouse
from pipelines.statements import closing, report
from pipelines.statements.render import amount
from pipelines.statements.statement import BALANCE_FIGURES, Month


def _preview(docs: dict[str, dict]) -> str:
    lines = [
        "| customer | currency | opening | adjustments | grants | consumption | expired "
        "| closing | overage |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for customer_id, doc in list(docs.items())[:50]:
        for t in doc["totals"]:
            figures = [amount(t[k]) for k in BALANCE_FIGURES if k != "available"]
            lines.append(f"| {customer_id} | {t['currency']} | " + " | ".join(figures) + " |")
    return "\n".join(lines)


@dg.asset(
    partitions_def=MONTHLY,
    deps=[warehouse],
    group_name="statements",
    kinds={"json"},
    pool="tally_writer",
)
def monthly_statements(context: dg.AssetExecutionContext, tally: TallyHome) -> dg.MaterializeResult:
    """One statement per customer for the month: balances per pool and seat, grants,
    consumption by product, event, user, seat and hot key, expirations, overage, and adjustments
    to closed months. Final (never changed again) once the month has closed, after the grace
    period (TALLY_STATEMENT_GRACE_DAYS, default 3 days); an open month is a draft. Render one
    with `tally statement --customer ID --month YYYY-MM --format html|json|csv`."""
    home = tally.resolve()
    month = Month.parse(context.partition_key)
    found = closing.month_statements(home, month)
    if found.status == "final":
        path = closing.final_path(home, month)
    else:
        path = closing.open_path(home, month)
        closing.write_json_atomic({"month": str(month), "statements": found.docs}, path)
    return dg.MaterializeResult(
        metadata={
            "status": found.status,
            "customers": len(found.docs),
            "adjustment_lines": sum(len(d["adjustments"]) for d in found.docs.values()),
            "path": dg.MetadataValue.path(str(path)),
            "totals": dg.MetadataValue.md(_preview(found.docs)),
        }
    )


@dg.asset(deps=[warehouse], group_name="statements", kinds={"html"}, pool="tally_writer")
def tally_report(tally: TallyHome) -> dg.MaterializeResult:
    """`reports/report.html`: balances and burn rates, pools and seats nearing zero or in
    overage, expiring credits, and data-quality exceptions (the same page as `tally report`)."""
    home = tally.resolve()
    path = home.root / "reports" / "report.html"
    built = report.write(home, path)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "as_of": built.as_of.isoformat(),
            "pools": built.pools,
            "nearing_zero_or_overage": built.attention,
            "expiring_grants": built.expiring,
            "uncharged_signals": built.exceptions,
        }
    )
