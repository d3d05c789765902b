"""Prometheus' text format as the edge reads and writes it: parsing, merging, quantiles."""

from __future__ import annotations

import math

import pytest

from homelab_tunnel.edge.exposition import (
    ExpositionError,
    Family,
    Sample,
    difference,
    histogram,
    merge,
    parse,
    quantile,
    render,
)

SERIES = 'code="{code}",handler="subroute",host="blog.example.com",method="GET",server="srv0"'


def _caddy_page() -> str:
    """Caddy 2.11's per-host histogram lines, as its admin endpoint writes them."""
    name = "caddy_http_request_duration_seconds"
    lines = [
        f"# HELP {name} Histogram of round-trip request durations.",
        f"# TYPE {name} histogram",
    ]
    for code, fast, slow, total in (("200", 6, 8, 0.61), ("404", 2, 2, 0.004)):
        labels = SERIES.format(code=code)
        for bound, count in (("0.005", fast), ("0.5", slow), ("+Inf", slow)):
            lines.append(f'{name}_bucket{{{labels},le="{bound}"}} {count}')
        lines += [f"{name}_sum{{{labels}}} {total}", f"{name}_count{{{labels}}} {slow}"]
    lines += ["# HELP go_goroutines Number of goroutines.", "# TYPE go_goroutines gauge"]
    return "\n".join([*lines, "go_goroutines 41", ""])


CADDY = _caddy_page()


def test_families_keep_their_samples_and_histogram_suffixes() -> None:
    families = parse(CADDY)
    assert list(families) == ["caddy_http_request_duration_seconds", "go_goroutines"]
    duration = families["caddy_http_request_duration_seconds"]
    assert duration.type == "histogram"
    assert len(duration.samples) == 10
    assert duration.samples[0].label("host") == "blog.example.com"
    assert families["go_goroutines"].samples == [Sample("go_goroutines", (), 41.0)]


def test_escaped_label_values_and_help_round_trip() -> None:
    text = (
        "# HELP odd_total Line one\\nback\\\\slash\n# TYPE odd_total counter\n"
        'odd_total{a="q\\"uote",b="back\\\\slash\\nnewline",} 3 1700000000000\n'
    )
    (family,) = parse(text).values()
    assert family.help == "Line one\nback\\slash"
    assert dict(family.samples[0].labels) == {"a": 'q"uote', "b": "back\\slash\nnewline"}
    assert parse(render([family]))["odd_total"] == family


def test_special_values_parse_and_render() -> None:
    family = parse("x NaN\ny +Inf\nz -Inf\n")
    assert math.isnan(family["x"].samples[0].value)
    assert render(family.values()).splitlines()[1::2] == ["x NaN", "y +Inf", "z -Inf"]


@pytest.mark.parametrize(
    "line",
    ['a{b="unterminated} 1', "a{b=1} 2", 'a{b="c" d="e"} 1', "a", "a{} one", '{x="y"} 1'],
)
def test_malformed_lines_are_refused_by_number(line: str) -> None:
    with pytest.raises(ExpositionError, match="line 2"):
        parse(f"ok 1\n{line}\n")


def test_merge_labels_each_source_and_joins_shared_families() -> None:
    caddy = parse("# TYPE go_goroutines gauge\ngo_goroutines 41\n")
    headscale = parse(
        "# TYPE go_goroutines gauge\ngo_goroutines 12\n"
        '# TYPE h_total counter\nh_total{source="x"} 1\n'
    )
    merged = {family.name: family for family in merge({"caddy": caddy, "headscale": headscale})}
    assert [s.labels for s in merged["go_goroutines"].samples] == [
        (("source", "caddy"),),
        (("source", "headscale"),),
    ]
    # A source's own `source` label is kept under another name, as Prometheus does.
    relabelled = merged["h_total"].samples[0].labels
    assert relabelled == (("source", "headscale"), ("exported_source", "x"))
    text = render(merged.values())
    assert text.count("# TYPE go_goroutines gauge") == 1


def test_a_family_of_another_type_is_left_out_and_counted() -> None:
    merged = merge(
        {
            "caddy": parse("# TYPE up gauge\nup 1\n"),
            "litestream": parse("# TYPE up counter\nup 5\n"),
        }
    )
    names = {family.name: family for family in merged}
    assert [s.value for s in names["up"].samples] == [1.0]
    conflicts = names["homelab_tunnel_metrics_conflicts"].samples
    assert conflicts == [
        Sample("homelab_tunnel_metrics_conflicts", (("source", "litestream"),), 1.0)
    ]


def test_histogram_sums_the_matching_series_per_bound() -> None:
    duration = parse(CADDY)["caddy_http_request_duration_seconds"]
    assert histogram(duration, host="blog.example.com") == [
        (0.005, 8.0),
        (0.5, 10.0),
        (math.inf, 10.0),
    ]
    assert histogram(duration, host="other.example.com") == []
    assert histogram(duration, code="404") == [(0.005, 2.0), (0.5, 2.0), (math.inf, 2.0)]


def test_quantiles_interpolate_inside_the_bucket_as_prometheus_does() -> None:
    buckets = [(0.005, 8.0), (0.5, 10.0), (math.inf, 10.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.005 * 5 / 8)
    # rank 9.5 of 10: three quarters into (0.005, 0.5]
    assert quantile(0.95, buckets) == pytest.approx(0.005 + 0.495 * 0.75)
    assert quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None
    # Everything above the last finite bound: that bound, as histogram_quantile says.
    assert quantile(0.5, [(0.1, 0.0), (1.0, 0.0), (math.inf, 4.0)]) == 1.0


def test_difference_is_what_happened_between_and_a_reset_starts_again() -> None:
    older = [(0.1, 5.0), (math.inf, 6.0)]
    assert difference([(0.1, 7.0), (math.inf, 9.0)], older) == [(0.1, 2.0), (math.inf, 3.0)]
    assert difference([(0.1, 1.0), (math.inf, 1.0)], older) == [(0.1, 1.0), (math.inf, 1.0)]


def test_render_writes_each_family_once_with_its_type() -> None:
    family = Family("a_total", "counter", "", [Sample("a_total", (("x", "1"),), 2.5)])
    assert render([family]) == '# TYPE a_total counter\na_total{x="1"} 2.5\n'
