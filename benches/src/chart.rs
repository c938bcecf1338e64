//! `--chart FILE.svg`: the summary's medians as a self-contained SVG chart,
//! and the same figures as JSON beside it (`FILE.json`), which
//! `--chart-from FILE.json` renders again without running anything.
//!
//! Two panels side by side, one row per workload (the txn workload's four
//! rows and the keyspaces workload's three included), one horizontal bar per
//! engine in each row, one colour per engine: on the left ops/s (commits/s
//! for the txn rows, batches/s for `keyspaces batch 2`), on the right the
//! p99 latency (for the txn rows: of a commit, retries included; for the
//! batch row: of a batch). Both axes
//! are logarithmic, since the figures span three decades (fillsync's
//! thousands of ops/s, readseq's millions); each bar is labelled with its
//! value. A log axis keeps every engine's absolute figure readable where
//! bars relative to kevo would hide it; the summary table printed before
//! gives the ratios. An engine that does not run a workload (`n/a`) has no
//! bar in that row.
//!
//! The SVG backend writes `<text>` elements and leaves the fonts to the
//! viewer (sans-serif), so no font is needed to build or run this.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::{Value, json};

use crate::engine::Res;

/// One engine's figures (medians over the rounds) on one workload row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Point {
    /// A workload row of the summary (`fillseq`, `txn low 1t`,
    /// `keyspaces fill 8`, ...).
    pub(crate) workload: String,
    pub(crate) engine: String,
    /// ops/s (commits/s for the txn rows, batches/s for the keyspaces batch
    /// row).
    pub(crate) ops_per_sec: f64,
    /// The 99th percentile latency of an operation (of a commit for the txn
    /// rows, of a batch for the keyspaces batch row), in microseconds.
    pub(crate) p99_us: f64,
}

/// What a chart shows: the medians of one run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Results {
    /// One line on what ran (keys, value size, threads, rounds).
    pub(crate) setup: String,
    /// In the order of the run (kevo first); each has its own colour.
    pub(crate) engines: Vec<String>,
    /// The rows, top to bottom, in the order of the run.
    pub(crate) workloads: Vec<String>,
    /// At most one per (workload, engine); a missing one is `n/a`.
    pub(crate) points: Vec<Point>,
}

/// The version of the JSON layout, its `kevo_bench_results` field.
const JSON_VERSION: u64 = 1;

impl Results {
    fn point(&self, workload: &str, engine: &str) -> Option<&Point> {
        self.points
            .iter()
            .find(|p| p.workload == workload && p.engine == engine)
    }

    /// The JSON form that [`Results::from_json`] reads.
    pub(crate) fn to_json(&self) -> String {
        let points: Vec<Value> = self
            .points
            .iter()
            .map(|p| {
                json!({
                    "workload": p.workload,
                    "engine": p.engine,
                    "ops_per_sec": p.ops_per_sec,
                    "p99_us": p.p99_us,
                })
            })
            .collect();
        let value = json!({
            "kevo_bench_results": JSON_VERSION,
            "setup": self.setup,
            "engines": self.engines,
            "workloads": self.workloads,
            "points": points,
        });
        format!("{value:#}\n")
    }

    /// Reads what [`Results::to_json`] wrote; every field is checked.
    pub(crate) fn from_json(text: &str) -> Res<Results> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let field = |v: &'_ Value, name: &str| -> Res<Value> {
            v.get(name)
                .cloned()
                .ok_or_else(|| format!("no field `{name}`"))
        };
        let string = |v: &Value, name: &str| -> Res<String> {
            field(v, name)?
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("`{name}` is not a string"))
        };
        let number = |v: &Value, name: &str| -> Res<f64> {
            field(v, name)?
                .as_f64()
                .ok_or_else(|| format!("`{name}` is not a number"))
        };
        let strings = |name: &str| -> Res<Vec<String>> {
            let list = field(&value, name)?;
            let items = list
                .as_array()
                .ok_or_else(|| format!("`{name}` is not a list"))?;
            items
                .iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("`{name}` holds a non-string"))
                })
                .collect()
        };
        let version = field(&value, "kevo_bench_results")?.as_u64();
        if version != Some(JSON_VERSION) {
            return Err(format!(
                "`kevo_bench_results` is {version:?}, this kevo-bench reads {JSON_VERSION}"
            ));
        }
        let list = field(&value, "points")?;
        let items = list.as_array().ok_or("`points` is not a list")?;
        let points = items
            .iter()
            .map(|p| {
                Ok(Point {
                    workload: string(p, "workload")?,
                    engine: string(p, "engine")?,
                    ops_per_sec: number(p, "ops_per_sec")?,
                    p99_us: number(p, "p99_us")?,
                })
            })
            .collect::<Res<Vec<Point>>>()?;
        Ok(Results {
            setup: string(&value, "setup")?,
            engines: strings("engines")?,
            workloads: strings("workloads")?,
            points,
        })
    }
}

/// Where the results of a chart at `chart` go: the same name, `.json`
/// (`FILE.svg.json` when `chart` already ends in `.json`).
pub(crate) fn json_path(chart: &Path) -> PathBuf {
    if chart.extension().is_some_and(|e| e == "json") {
        let mut name = chart.as_os_str().to_owned();
        name.push(".json");
        PathBuf::from(name)
    } else {
        chart.with_extension("json")
    }
}

/// Writes `results` as JSON beside `chart` (see [`json_path`]) and renders
/// the chart; an error names the file.
pub(crate) fn write(results: &Results, chart: &Path) -> Res<()> {
    let json = json_path(chart);
    std::fs::write(&json, results.to_json())
        .map_err(|e| format!("could not write the results to {}: {e}", json.display()))?;
    render(results, chart)
}

/// Reads results that [`write()`] wrote and renders them to `chart`.
pub(crate) fn render_from(json: &Path, chart: &Path) -> Res<()> {
    let text = std::fs::read_to_string(json)
        .map_err(|e| format!("could not read {}: {e}", json.display()))?;
    let results = Results::from_json(&text).map_err(|e| format!("{}: {e}", json.display()))?;
    render(&results, chart)
}

/// The colour of an engine: fixed per name, so that charts of different
/// runs agree; kevo's is the strongest.
fn colour(engine: &str, index: usize) -> RGBColor {
    match engine {
        "kevo" => RGBColor(31, 119, 180),
        "fjall" => RGBColor(255, 127, 14),
        "sled" => RGBColor(44, 160, 44),
        "redb" => RGBColor(214, 39, 40),
        "rocksdb" => RGBColor(148, 103, 189),
        _ => {
            let (r, g, b) = Palette99::COLORS[index % Palette99::COLORS.len()];
            RGBColor(r, g, b)
        }
    }
}

/// `2.47M`, `389k`, `512`.
fn format_ops(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// `0.42 µs`, `12.3 µs`, `407 µs`, `4.1 ms`, `1.20 s`.
fn format_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.1} ms", us / 1e3)
    } else if us >= 100.0 {
        format!("{us:.0} µs")
    } else if us >= 10.0 {
        format!("{us:.1} µs")
    } else {
        format!("{us:.2} µs")
    }
}

/// An ops/s axis label at a power of ten: `100`, `1k`, `100k`, `1M`.
fn format_ops_tick(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else {
        format!("{v}")
    }
}

/// A latency axis label at a power of ten: `0.1 µs`, `10 µs`, `1 ms`, `1 s`.
fn format_us_tick(us: f64) -> String {
    if us >= 1e6 {
        format!("{} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{} ms", us / 1e3)
    } else {
        format!("{us} µs")
    }
}

/// Everything a panel needs, apart from the figures.
struct Panel<'a> {
    caption: &'a str,
    /// Below the axis.
    axis: &'a str,
    /// Each point's value (only positive ones are drawn).
    value: fn(&Point) -> f64,
    /// A bar's label.
    label: fn(f64) -> String,
    /// An axis tick's label.
    tick: fn(f64) -> String,
}

/// The pixel height of one engine's bar, and the room above and below.
const BAR_PX: u32 = 16;
const GROUP_PAD_PX: u32 = 12;
const WIDTH_PX: u32 = 1500;
const HEADER_PX: u32 = 90;
/// The panels' captions, and their x axes with its description.
const PANEL_EXTRA_PX: u32 = 110;

/// Renders `results` into a new SVG file at `chart`.
pub(crate) fn render(results: &Results, chart: &Path) -> Res<()> {
    let rows = results.workloads.len().max(1) as u32;
    let engines = results.engines.len().max(1) as u32;
    let height = HEADER_PX + PANEL_EXTRA_PX + rows * (engines * BAR_PX + GROUP_PAD_PX);
    let root = SVGBackend::new(chart, (WIDTH_PX, height)).into_drawing_area();
    draw(results, &root).map_err(|e| format!("could not draw {}: {e}", chart.display()))?;
    root.present()
        .map_err(|e| format!("could not write the chart to {}: {e}", chart.display()))
}

/// The chart: a header (title, setup, legend) and the two panels.
fn draw<DB: DrawingBackend>(results: &Results, root: &DrawingArea<DB, Shift>) -> Res<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let (header, body) = root.split_vertically(HEADER_PX);
    header
        .draw(&Text::new(
            "kevo-bench: median throughput and p99 latency per workload",
            (20, 12),
            ("sans-serif", 27).into_font().style(FontStyle::Bold),
        ))
        .map_err(err)?;
    header
        .draw(&Text::new(
            results.setup.as_str(),
            (20, 42),
            ("sans-serif", 17).into_font().color(&RGBColor(80, 80, 80)),
        ))
        .map_err(err)?;
    header
        .draw(&Text::new(
            "no bar: the engine does not run that workload (n/a); txn rows: commits/s and \
             commit latency; keyspaces batch row: batches/s and batch latency",
            (20, 60),
            ("sans-serif", 17).into_font().color(&RGBColor(80, 80, 80)),
        ))
        .map_err(err)?;
    // The legend, top right: one swatch per engine.
    let mut x = WIDTH_PX as i32 - 20 - 110 * results.engines.len() as i32;
    for (i, engine) in results.engines.iter().enumerate() {
        let swatch = Rectangle::new([(x, 14), (x + 20, 32)], colour(engine, i).filled());
        header.draw(&swatch).map_err(err)?;
        let style = ("sans-serif", 21).into_font();
        header
            .draw(&Text::new(engine.as_str(), (x + 27, 15), style))
            .map_err(err)?;
        x += 110;
    }
    let (left, right) = body.split_horizontally(WIDTH_PX / 2);
    panel(
        results,
        &left,
        &Panel {
            caption: "throughput, ops/s (txn: commits/s, batch row: batches/s); longer is better",
            axis: "ops/s, log scale",
            value: |p| p.ops_per_sec,
            label: format_ops,
            tick: format_ops_tick,
        },
    )?;
    panel(
        results,
        &right,
        &Panel {
            caption: "p99 latency (txn: per commit, batch row: per batch); shorter is better",
            axis: "µs, log scale",
            value: |p| p.p99_us,
            label: format_us,
            tick: format_us_tick,
        },
    )
}

/// The powers of ten from one at or below `min` to one at or above `max`.
fn decades(min: f64, max: f64) -> (f64, f64) {
    let lo = 10f64.powf(min.log10().floor());
    let hi = 10f64.powf(max.log10().ceil());
    (lo, if hi > lo { hi } else { lo * 10.0 })
}

/// The workloads' axis: `0..rows` upwards, row `i` from the top spanning
/// `rows - i - 1 .. rows - i`, its tick (and label) in the middle.
struct Rows(usize);

impl Ranged for Rows {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let share = value / self.0.max(1) as f64;
        limit.0 + (share * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            return Vec::new();
        }
        (0..self.0).map(|i| (self.0 - i) as f64 - 0.5).collect()
    }

    fn range(&self) -> std::ops::Range<f64> {
        0.0..self.0.max(1) as f64
    }
}

/// One panel: a row per workload, a bar per engine.
fn panel<DB: DrawingBackend>(
    results: &Results,
    area: &DrawingArea<DB, Shift>,
    spec: &Panel<'_>,
) -> Res<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let values: Vec<f64> = results
        .points
        .iter()
        .map(spec.value)
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    let (lo, top) = if values.is_empty() {
        (1.0, 10.0)
    } else {
        decades(min, max)
    };
    // Room right of the longest bar for its label: a third of a decade
    // past the last power of ten, or more if the bar reaches it.
    let hi = top.max(max * 3.0);
    let mut ticks = Vec::new();
    let mut t = lo;
    while t <= hi * 1.0001 {
        ticks.push(t);
        t *= 10.0;
    }
    let rows = results.workloads.len();
    let n = rows.max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(spec.caption, ("sans-serif", 19))
        .margin(10)
        .margin_right(25)
        .x_label_area_size(45)
        // Room for the longest row name, `keyspaces batch 2`.
        .y_label_area_size(160)
        .build_cartesian_2d((lo..hi).log_scale().with_key_points(ticks), Rows(rows))
        .map_err(err)?;
    let names = results.workloads.clone();
    let tick = spec.tick;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(220, 220, 220))
        .x_desc(spec.axis)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| {
            let i = (n - v - 0.5).round();
            if i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .label_style(("sans-serif", 17))
        .axis_desc_style(("sans-serif", 17))
        .draw()
        .map_err(err)?;
    // Faint lines between the rows.
    let separators = (1..rows).map(|i| {
        let y = i as f64;
        PathElement::new(vec![(lo, y), (hi, y)], RGBColor(235, 235, 235))
    });
    chart.draw_series(separators).map_err(err)?;
    let engines = results.engines.len().max(1) as f64;
    // Each row's bars fill the middle of it, top to bottom in engine order,
    // leaving the same share as GROUP_PAD_PX of the row free.
    let pad = f64::from(GROUP_PAD_PX) / f64::from(GROUP_PAD_PX + BAR_PX * engines as u32);
    let bar = (1.0 - pad) / engines;
    for (j, engine) in results.engines.iter().enumerate() {
        let fill = colour(engine, j);
        let mut bars = Vec::new();
        for (i, workload) in results.workloads.iter().enumerate() {
            let Some(point) = results.point(workload, engine) else {
                continue;
            };
            let value = (spec.value)(point);
            if !value.is_finite() || value <= 0.0 {
                continue;
            }
            let top = n - i as f64 - pad / 2.0 - j as f64 * bar;
            // A hair's gap between two engines' bars.
            let bottom = top - bar * 0.88;
            bars.push(Rectangle::new(
                [(lo, top), (value.max(lo), bottom)],
                fill.filled(),
            ));
            let label = (spec.label)(value);
            let style = ("sans-serif", 15)
                .into_font()
                .color(&RGBColor(40, 40, 40))
                .pos(Pos::new(HPos::Left, VPos::Center));
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at((value.max(lo), (top + bottom) / 2.0))
                        + Text::new(label, (4, 0), style),
                ))
                .map_err(err)?;
        }
        chart.draw_series(bars).map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Results {
        let workloads = [
            "fillseq",
            "readrandom",
            "fillsync",
            "txn low 4t",
            "keyspaces batch 2",
        ];
        let engines = ["kevo", "fjall", "sled"];
        let mut points = Vec::new();
        for (i, w) in workloads.iter().enumerate() {
            for (j, e) in engines.iter().enumerate() {
                // sled has no transactions: n/a, no point.
                if w.starts_with("txn") && *e == "sled" {
                    continue;
                }
                points.push(Point {
                    workload: w.to_string(),
                    engine: e.to_string(),
                    ops_per_sec: 5_000.0 * 10f64.powi(i as i32) / (j + 1) as f64,
                    p99_us: 0.5 * (i + 1) as f64 * (j + 1) as f64,
                });
            }
        }
        Results {
            setup: "test: 1000 keys".to_string(),
            engines: engines.iter().map(|e| e.to_string()).collect(),
            workloads: workloads.iter().map(|w| w.to_string()).collect(),
            points,
        }
    }

    /// The contents of the SVG's `<text>` elements, trimmed.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let (_, rest) = t.split_once('>')?;
                let (text, _) = rest.split_once("</text>")?;
                Some(text.trim().to_string())
            })
            .collect()
    }

    #[test]
    fn renders_every_workload_and_engine() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chart.svg");
        let results = sample();
        write(&results, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"));
        assert!(svg.trim_end().ends_with("</svg>"));
        let texts = texts(&svg);
        for name in results.workloads.iter().chain(&results.engines) {
            assert!(texts.contains(name), "{name} missing from {texts:?}");
        }
        // Both panels, with bar labels: ops/s from 5k to 50M, p99 in µs.
        for text in [
            "ops/s, log scale",
            "µs, log scale",
            "5.0k",
            "5.00M",
            "50.00M",
            "0.50 µs",
        ] {
            assert!(
                texts.iter().any(|t| t == text),
                "{text} missing from {texts:?}"
            );
        }
        // The JSON beside it reads back the same and renders the same.
        let json = std::fs::read_to_string(dir.path().join("chart.json")).unwrap();
        assert_eq!(Results::from_json(&json).unwrap(), results);
        let again = dir.path().join("again.svg");
        render_from(&dir.path().join("chart.json"), &again).unwrap();
        assert_eq!(std::fs::read_to_string(&again).unwrap(), svg);
    }

    #[test]
    fn unwritable_chart_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no such dir").join("chart.svg");
        let e = write(&sample(), &path).unwrap_err();
        assert!(e.contains("could not write"), "{e}");
    }

    #[test]
    fn bad_json_is_an_error() {
        assert!(Results::from_json("{").is_err());
        assert!(Results::from_json(r#"{"kevo_bench_results": 99}"#).is_err());
        let mut text = sample().to_json();
        text = text.replace("\"ops_per_sec\"", "\"ops\"");
        assert!(
            Results::from_json(&text)
                .unwrap_err()
                .contains("ops_per_sec")
        );
    }

    #[test]
    fn json_path_sits_beside_the_chart() {
        assert_eq!(json_path(Path::new("d/b.svg")), PathBuf::from("d/b.json"));
        assert_eq!(json_path(Path::new("b")), PathBuf::from("b.json"));
        assert_eq!(json_path(Path::new("b.json")), PathBuf::from("b.json.json"));
    }

    #[test]
    fn labels() {
        assert_eq!(format_ops(2_470_000.0), "2.47M");
        assert_eq!(format_ops(389_406.0), "389k");
        assert_eq!(format_ops(5_975.0), "6.0k");
        assert_eq!(format_us(0.42), "0.42 µs");
        assert_eq!(format_us(12.34), "12.3 µs");
        assert_eq!(format_us(407.04), "407 µs");
        assert_eq!(format_us(4_100.0), "4.1 ms");
        assert_eq!(format_ops_tick(100_000.0), "100k");
        assert_eq!(format_ops_tick(1e7), "10M");
        assert_eq!(format_us_tick(0.1), "0.1 µs");
        assert_eq!(format_us_tick(1_000.0), "1 ms");
    }
}
