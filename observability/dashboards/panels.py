"""The house style of the email-ingest dashboards, on Grafana's own builders (grafana-foundation-sdk).

Every panel queries the templated Prometheus data source, carries a unit, a description and absolute thresholds
(the base step first, as Grafana's dashboard-linter asks); timeseries panels show a table legend with mean, max
and last. The SDK places the panels on the 24-column grid (``Dashboard.with_row`` / ``with_panel``); this module
only sets what the SDK leaves to the caller: the defaults, panel ids and the dashboard's variables.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.builders.common import (
    GraphThresholdsStyleConfig,
    ReduceDataOptions,
    StackingConfig,
    VizLegendOptions,
    VizTooltipOptions,
)
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common, dashboard
from grafana_foundation_sdk.models.prometheus import QueryEditorMode

JSON = dict[str, Any]
PanelBuilder = timeseries.Panel | stat.Panel

TAG = "email-ingest"
# What Grafana 10.3 to 11.x write; the SDK's model defaults to 36 (the schema's oldest), so it is set here.
SCHEMA_VERSION = 39
DATASOURCE = dashboard.DataSourceRef(type_val="prometheus", uid="${datasource}")
API_JOB = "email-ingest-api"
CONSUMER_JOB = "email-ingest-consumer"

GREEN, YELLOW, ORANGE, RED, BLUE = "green", "yellow", "orange", "red", "blue"


def query(expr: str, legend: str, *, exemplars: bool = False) -> prometheus.Dataquery:
    """A range query in code mode; the panel gives it its refId. With `exemplars`, Grafana also fetches the
    histogram's exemplars (the trace ids the services attach) and draws each as a point linking to its trace."""
    built = (
        prometheus.Dataquery()
        .expr(expr)
        .legend_format(legend)
        .range()
        .editor_mode(QueryEditorMode.CODE)
        .datasource(DATASOURCE)
    )
    return built.exemplar(True) if exemplars else built


def _thresholds(base_color: str, steps: Sequence[tuple[float, str]]) -> dashboard_builder.ThresholdsConfig:
    return (
        dashboard_builder.ThresholdsConfig()
        .mode(dashboard.ThresholdsMode.ABSOLUTE)
        .steps(
            [dashboard.Threshold(color=base_color, value=None)]
            + [dashboard.Threshold(color=color, value=value) for value, color in steps]
        )
    )


def panel(
    title: str,
    description: str,
    unit: str,
    targets: Sequence[prometheus.Dataquery],
    *,
    kind: str = "timeseries",
    width: int = 12,
    height: int = 8,
    steps: Sequence[tuple[float, str]] = (),
    base_color: str = GREEN,
    min: float | None = 0,
    max: float | None = None,
    stack: bool = False,
    decimals: int | None = None,
) -> PanelBuilder:
    """A timeseries (or, with ``kind="stat"``, a stat) panel in the house style.

    `steps` are the thresholds above `base_color`, ascending: (value, colour). On a timeseries they are drawn as
    dashed lines.
    """
    built: PanelBuilder
    if kind == "stat":
        built = (
            stat.Panel()
            .color_scheme(dashboard_builder.FieldColor().mode(dashboard.FieldColorModeId.THRESHOLDS))
            .color_mode(common.BigValueColorMode.VALUE)
            .graph_mode(common.BigValueGraphMode.AREA)
            .justify_mode(common.BigValueJustifyMode.AUTO)
            .orientation(common.VizOrientation.AUTO)
            .text_mode(common.BigValueTextMode.AUTO)
            .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
        )
    elif kind == "timeseries":
        built = (
            timeseries.Panel()
            .color_scheme(dashboard_builder.FieldColor().mode(dashboard.FieldColorModeId.PALETTE_CLASSIC))
            .axis_placement(common.AxisPlacement.AUTO)
            .draw_style(common.GraphDrawStyle.LINE)
            .fill_opacity(10)
            .gradient_mode(common.GraphGradientMode.NONE)
            .line_interpolation(common.LineInterpolation.LINEAR)
            .line_width(1)
            .point_size(4)
            .show_points(common.VisibilityMode.NEVER)
            .span_nulls(False)
            .stacking(
                StackingConfig().group("A").mode(common.StackingMode.NORMAL if stack else common.StackingMode.NONE)
            )
            .thresholds_style(
                GraphThresholdsStyleConfig().mode(
                    common.GraphThresholdsStyleMode.DASHED if steps else common.GraphThresholdsStyleMode.OFF
                )
            )
            .legend(
                VizLegendOptions()
                .calcs(["mean", "max", "lastNotNull"])
                .display_mode(common.LegendDisplayMode.TABLE)
                .placement(common.LegendPlacement.BOTTOM)
                .show_legend(True)
            )
            .tooltip(VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING))
        )
    else:
        raise ValueError(f"unknown panel kind {kind!r}")
    built = (
        built.title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .span(width)
        .height(height)
        .mappings([])
        .thresholds(_thresholds(base_color, steps))
        .targets([target.ref_id(chr(ord("A") + index)) for index, target in enumerate(targets)])
    )
    if min is not None:
        built = built.min(min)
    if max is not None:
        built = built.max(max)
    if decimals is not None:
        built = built.decimals(decimals)
    return built


@dataclass(frozen=True)
class Row:
    """A titled group of panels: the SDK puts the row across the grid and the panels after it, left to right."""

    title: str
    panels: tuple[PanelBuilder, ...]


def _query_variable(
    name: str, label: str, definition: str, all_value: str, description: str
) -> dashboard_builder.QueryVariable:
    return (
        dashboard_builder.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DATASOURCE)
        .query(definition)
        .current(dashboard.VariableOption(selected=True, text="All", value="$__all"))
        .options([])
        .hide(dashboard.VariableHide.DONT_HIDE)
        .include_all(True)
        .all_value(all_value)
        .multi(True)
        .refresh(dashboard.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .regex("")
        .sort(dashboard.VariableSort.ALPHABETICAL_ASC)
    )


def _variables(job_metric: str) -> list[cogbuilder.Builder[dashboard.VariableModel]]:
    """$datasource, then $namespace, $job and $instance, each narrowing the next; "All" selects everything.

    The All values are ``.*`` for namespace (it also matches series without a namespace label, as on a plain
    Prometheus) and ``.+`` for job and instance (every scraped series has them).
    """
    return [
        dashboard_builder.DatasourceVariable("datasource")
        .label("Data source")
        .description("The Prometheus that scrapes email-ingest.")
        .type("prometheus")
        .hide(dashboard.VariableHide.DONT_HIDE)
        .multi(False)
        .include_all(False)
        .regex(""),
        _query_variable(
            "namespace",
            "Namespace",
            "label_values(email_ingest_build_info, namespace)",
            ".*",
            "Kubernetes namespace. 'All' is '.*', which also matches series without a namespace label "
            "(a plain Prometheus).",
        ),
        _query_variable(
            "job",
            "Job",
            f'label_values({job_metric}{{namespace=~"$namespace"}}, job)',
            ".+",
            f"Prometheus job: {API_JOB} (API) or {CONSUMER_JOB} (consumer).",
        ),
        _query_variable(
            "instance",
            "Instance",
            f'label_values({job_metric}{{namespace=~"$namespace", job=~"$job"}}, instance)',
            ".+",
            "Scraped instance (pod address).",
        ),
    ]


def build(
    *,
    uid: str,
    title: str,
    description: str,
    job_metric: str,
    rows: Sequence[Row],
    default_range: str = "now-3h",
    extra_tags: Sequence[str] = (),
) -> JSON:
    """The Grafana JSON model of one dashboard.

    `job_metric` is the metric whose series offer the choices of the job and instance variables.
    """
    builder = (
        dashboard_builder.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG, *extra_tags])
        .readonly()
        .tooltip(dashboard.DashboardCursorSync.CROSSHAIR)
        .time(default_range, "now")
        .timezone("utc")
        .refresh("30s")
        .version(1)
        .fiscal_year_start_month(0)
        .week_start("")
        .annotation(
            dashboard_builder.AnnotationQuery()
            .name("Annotations & Alerts")
            .datasource(dashboard.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
            .enable(True)
            .hide(True)
            .icon_color("rgba(0, 211, 255, 1)")
            .type("dashboard")
            .built_in(1)
        )
        .link(
            dashboard_builder.DashboardLink("email-ingest dashboards")
            .type(dashboard.DashboardLinkType.DASHBOARDS)
            .icon("external link")
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
            .target_blank(False)
        )
        .variables(_variables(job_metric))
    )
    for row in rows:
        # The row stays empty and its panels follow it at the top level: that is how Grafana stores an expanded
        # row (a row's own `panels` are the ones it hides while collapsed).
        builder = builder.with_row(dashboard_builder.Row(row.title))
        for item in row.panels:
            builder = builder.with_panel(item)
    model = builder.build()
    model.schema_version = SCHEMA_VERSION
    document: JSON = json.loads(JSONEncoder().encode(model))
    # Ids in grid order: the SDK leaves them unset (0) and Grafana wants them unique within a dashboard.
    for number, item in enumerate(document["panels"], start=1):
        item["id"] = number
        grid = item["gridPos"]
        if grid["x"] + grid["w"] > 24:
            raise ValueError(f"{uid}: panel {item['title']!r} does not fit on the grid's line: {grid}")
    return document
