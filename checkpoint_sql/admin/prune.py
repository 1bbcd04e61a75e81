"""What `checkpoint-sql prune` prints: the retention report as a table per namespace."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from checkpoint_sql.admin.output import WholeIds
from checkpoint_sql.admin.threads import human_bytes
from checkpoint_sql.saver.retention import RetentionReport


def render(report: RetentionReport) -> RenderableType:
    data = report.to_json()
    totals = data["totals"]
    verb = "would delete" if report.dry_run else "deleted"
    policy = []
    if report.policy.keep_last is not None:
        policy.append(f"beyond the newest {report.policy.keep_last} per namespace")
    if report.cutoff is not None:
        policy.append(f"older than {report.cutoff:%Y-%m-%d %H:%M:%S} UTC")
    title = f"{'dry run: ' if report.dry_run else ''}checkpoints {' and '.join(policy)}"
    if not report.namespaces:
        return Text(f"{title}: nothing to delete ({report.threads_examined} thread(s) examined)")
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("thread", style="cyan")
    table.add_column("namespace")
    for name in ("checkpoints", verb, "kept", "delta kept", "writes", "blobs", "freed"):
        table.add_column(name, justify="right")
    for n in data["namespaces"]:
        table.add_row(
            n["thread_id"],
            n["checkpoint_ns"] or "(root)",
            str(n["checkpoints"]),
            Text(str(n["deleted"]), style="red"),
            str(n["kept"]),
            str(n["kept_for_delta"] or ""),
            str(n["writes_deleted"]),
            str(n["blobs_deleted"]),
            human_bytes(n["bytes_freed"]),
        )
    summary = (
        f"{verb} {totals['checkpoints_deleted']} checkpoints, {totals['writes_deleted']} writes and "
        f"{totals['blobs_deleted']} blobs ({human_bytes(totals['bytes_freed'])}) in {totals['threads']} thread(s)"
    )
    if totals["threads_emptied"]:
        summary += f"; {totals['threads_emptied']} thread(s) left empty"
    if totals["kept_for_delta"]:
        summary += f"; {totals['kept_for_delta']} kept because a DeltaChannel is rebuilt from them"
    return Group(WholeIds(table), Text(summary, style="bold"))
