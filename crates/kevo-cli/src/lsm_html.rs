//! `kevo lsm --html`: a self-contained HTML page that draws the tree
//! (one row per level, each table a box placed along the key space, its
//! width the share of the keys it spans) and its history replayed from
//! the manifest, one picture per table-changing edit, with a slider.
//! No script or style is fetched from anywhere.

use std::fmt::Write;

use kevo_engine::{Stats, TableFile};

use crate::inspect::Replayed;
use crate::out::bytes;
use crate::text;

/// At most this many history pictures; a longer history is sampled evenly
/// (the last state always kept).
const HISTORY_STEPS_MAX: usize = 300;

const WIDTH: f64 = 1000.0;
const ROW: f64 = 36.0;
const LABEL: f64 = 50.0;

/// One table as drawn.
struct Boxed {
    level: usize,
    number: u64,
    size: u64,
    entries: u64,
    smallest: Vec<u8>,
    largest: Vec<u8>,
    seqnos: (u64, u64),
}

/// The page for the database `name`.
pub(crate) fn render(
    name: &str,
    files: &[TableFile],
    stats: &Stats,
    history: &[Replayed],
) -> String {
    let current: Vec<Boxed> = files
        .iter()
        .map(|f| Boxed {
            level: f.level,
            number: f.number,
            size: f.file_size,
            entries: f.entries,
            smallest: f.smallest_key.to_vec(),
            largest: f.largest_key.to_vec(),
            seqnos: (f.smallest_seqno, f.largest_seqno),
        })
        .collect();
    let steps = sample(history);
    let past: Vec<Vec<Boxed>> = steps.iter().map(|state| boxes_of(state)).collect();
    // One key axis for every picture, so that a table keeps its place.
    let axis = KeyAxis::new(current.iter().chain(past.iter().flatten()));
    let levels = stats.levels.len().max(1);

    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>kevo lsm: {title}</title>\n<style>\
body{{font-family:sans-serif;margin:20px;color:#222}} table{{border-collapse:collapse}} \
td,th{{padding:2px 10px;text-align:right;border-bottom:1px solid #ddd}} th{{background:#f4f4f4}} \
svg text{{font-size:12px}} .step{{display:none}} .step.on{{display:block}}</style></head><body>\n\
<h1>kevo lsm: {title}</h1>\n",
        title = html(name)
    );
    let _ = writeln!(
        page,
        "<p>{} tables, {} in all; memtable {}. Each box is one table: its horizontal place and width are the range of keys it holds (the key space read as numbers after the prefix every key shares), its colour its level. Hover a box for its details.</p>",
        stats.table_count(),
        bytes(stats.table_bytes()),
        bytes(stats.memtable_bytes)
    );
    page.push_str(
        "<table><tr><th>level</th><th>tables</th><th>size</th><th>target</th><th>score</th></tr>\n",
    );
    for (level, l) in stats.levels.iter().enumerate() {
        let _ = writeln!(
            page,
            "<tr><td>L{level}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td></tr>",
            l.tables,
            bytes(l.bytes),
            if l.target_bytes > 0 {
                bytes(l.target_bytes)
            } else {
                "-".into()
            },
            l.score
        );
    }
    page.push_str("</table>\n<h2>Now</h2>\n");
    page.push_str(&picture(&current, &axis, levels));
    let _ = write!(
        page,
        "<h2>History</h2>\n<p>The tree after each edit of the live manifest that added or removed a table ({} of {} shown).</p>\n",
        steps.len(),
        history.len()
    );
    if past.is_empty() {
        page.push_str("<p>The live manifest holds no table-changing edit yet.</p>\n");
    } else {
        let last = past.len() - 1;
        let _ = writeln!(
            page,
            "<input type=\"range\" id=\"slider\" min=\"0\" max=\"{last}\" value=\"{last}\" style=\"width:{WIDTH}px\"> <span id=\"label\"></span>"
        );
        for (i, boxes) in past.iter().enumerate() {
            let on = if i == last { " on" } else { "" };
            let _ = write!(page, "<div class=\"step{on}\" id=\"step{i}\">");
            page.push_str(&picture(boxes, &axis, levels));
            page.push_str("</div>\n");
        }
        page.push_str(
            "<script>\nconst s=document.getElementById('slider'),l=document.getElementById('label');\n\
function show(){document.querySelectorAll('.step').forEach(e=>e.classList.remove('on'));\n\
document.getElementById('step'+s.value).classList.add('on');l.textContent='step '+(+s.value+1)+' of '+(+s.max+1);}\n\
s.addEventListener('input',show);show();\n</script>\n",
        );
    }
    page.push_str("</body></html>\n");
    page
}

/// At most [`HISTORY_STEPS_MAX`] states, evenly spread, the last kept.
fn sample(history: &[Replayed]) -> Vec<&Replayed> {
    if history.len() <= HISTORY_STEPS_MAX {
        return history.iter().collect();
    }
    let stride = history.len() as f64 / HISTORY_STEPS_MAX as f64;
    let mut picked: Vec<&Replayed> = (0..HISTORY_STEPS_MAX - 1)
        .map(|i| &history[(i as f64 * stride) as usize])
        .collect();
    picked.extend(history.last());
    picked
}

fn boxes_of(state: &Replayed) -> Vec<Boxed> {
    state
        .levels
        .iter()
        .flat_map(|(level, tables)| {
            tables.values().map(|t| Boxed {
                level: *level,
                number: t.number,
                size: t.file_size,
                entries: t.entries,
                smallest: t.smallest_user_key().to_vec(),
                largest: t.largest_user_key().to_vec(),
                seqnos: (t.smallest_seqno, t.largest_seqno),
            })
        })
        .collect()
}

const COLOURS: [&str; 7] = [
    "#e6550d", "#fd8d3c", "#31a354", "#3182bd", "#756bb1", "#636363", "#8c6d31",
];

/// One SVG of `boxes` over the key `axis`.
fn picture(boxes: &[Boxed], axis: &KeyAxis, levels: usize) -> String {
    let height = ROW * levels as f64 + 10.0;
    let x = |key: &[u8]| LABEL + axis.fraction(key) * (WIDTH - LABEL - 10.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\">"
    );
    for level in 0..levels {
        let y = ROW * level as f64 + 5.0;
        let _ = write!(
            svg,
            "<text x=\"4\" y=\"{:.1}\">L{level}</text><line x1=\"{LABEL}\" x2=\"{WIDTH}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>",
            y + ROW / 2.0 + 4.0,
            y + ROW - 2.0,
            y + ROW - 2.0
        );
    }
    // L0 tables overlap: stack them thinly within the row.
    let l0: Vec<&Boxed> = boxes.iter().filter(|b| b.level == 0).collect();
    for b in boxes {
        let (x0, x1) = (x(&b.smallest), x(&b.largest));
        let width = (x1 - x0).max(2.0);
        let (mut y, mut h) = (ROW * b.level as f64 + 6.0, ROW - 10.0);
        if b.level == 0 && l0.len() > 1 {
            let i = l0.iter().position(|o| o.number == b.number).unwrap_or(0);
            h = (ROW - 10.0) / l0.len() as f64;
            y += h * i as f64;
        }
        let colour = COLOURS[b.level.min(COLOURS.len() - 1)];
        let _ = write!(
            svg,
            "<rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{h:.1}\" fill=\"{colour}\" fill-opacity=\"0.7\" stroke=\"#333\" stroke-width=\"0.5\"><title>L{} table {:06}.sst, {}, {} entries\nkeys {} .. {}\nseqnos {}..{}</title></rect>",
            b.level,
            b.number,
            bytes(b.size),
            b.entries,
            html(&text::escape(&b.smallest)),
            html(&text::escape(&b.largest)),
            b.seqnos.0,
            b.seqnos.1
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Where a key lies between the smallest and the largest key drawn: the
/// 8 bytes after the prefix they all share, read as a big-endian number
/// (so that `key00000039` and `key09999982` sit at the ends and
/// `key05000000` near the middle).
struct KeyAxis {
    prefix: Vec<u8>,
    low: f64,
    high: f64,
}

impl KeyAxis {
    fn new<'a>(boxes: impl Iterator<Item = &'a Boxed>) -> Self {
        let (mut smallest, mut largest): (Option<&[u8]>, Option<&[u8]>) = (None, None);
        for b in boxes {
            if smallest.is_none_or(|s| b.smallest.as_slice() < s) {
                smallest = Some(&b.smallest);
            }
            if largest.is_none_or(|l| b.largest.as_slice() > l) {
                largest = Some(&b.largest);
            }
        }
        let (smallest, largest) = (smallest.unwrap_or_default(), largest.unwrap_or_default());
        let shared = smallest
            .iter()
            .zip(largest)
            .take_while(|(a, b)| a == b)
            .count();
        let prefix = smallest[..shared].to_vec();
        let mut axis = KeyAxis {
            prefix,
            low: 0.0,
            high: 1.0,
        };
        axis.low = axis.number(smallest);
        axis.high = axis.number(largest);
        axis
    }

    fn number(&self, key: &[u8]) -> f64 {
        let mut bytes = [0u8; 8];
        for (slot, b) in bytes.iter_mut().zip(key.iter().skip(self.prefix.len())) {
            *slot = *b;
        }
        u64::from_be_bytes(bytes) as f64
    }

    /// `key`'s place on the axis, 0.0 to 1.0.
    fn fraction(&self, key: &[u8]) -> f64 {
        if self.high <= self.low {
            return 0.0;
        }
        // A key outside the shared prefix lies before or after all of it.
        let head = &key[..key.len().min(self.prefix.len())];
        if head != self.prefix.as_slice() {
            return if head < self.prefix.as_slice() {
                0.0
            } else {
                1.0
            };
        }
        ((self.number(key) - self.low) / (self.high - self.low)).clamp(0.0, 1.0)
    }
}

/// `text` safe inside HTML.
fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_axis_reads_keys_after_their_shared_prefix() {
        let boxed = |a: &str, b: &str| Boxed {
            level: 0,
            number: 1,
            size: 0,
            entries: 0,
            smallest: a.as_bytes().to_vec(),
            largest: b.as_bytes().to_vec(),
            seqnos: (0, 0),
        };
        let boxes = [boxed("key00", "key50"), boxed("key10", "key99")];
        let axis = KeyAxis::new(boxes.iter());
        assert_eq!(axis.fraction(b"key00"), 0.0);
        assert_eq!(axis.fraction(b"key99"), 1.0);
        let middle = axis.fraction(b"key50");
        assert!((0.45..0.6).contains(&middle), "{middle}");
        assert_eq!(axis.fraction(b"a"), 0.0);
        assert_eq!(axis.fraction(b"z"), 1.0);
    }

    #[test]
    fn html_escapes_markup() {
        assert_eq!(html("<a href=\"x\">&"), "&lt;a href=&quot;x&quot;&gt;&amp;");
    }
}
