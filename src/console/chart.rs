//! Small inline SVG charts drawn on the server: a per-minute bar strip for a connector's last
//! hour and a stacked bar per channel for the send report. Only numbers and escaped labels go
//! into the markup, so the pages can include it as is.

use std::fmt::Write;

/// Escapes text for SVG/HTML content and attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One bar per value (oldest first), scaled to the largest; `label` names the chart for
/// screen readers.
pub fn bars(values: &[i64], label: &str) -> String {
    let (w, h) = (2 * values.len().max(1), 24);
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    let mut svg = format!(
        r#"<svg class="spark" viewBox="0 0 {w} {h}" width="120" height="24" preserveAspectRatio="none" role="img" aria-label="{}"><title>{}</title>"#,
        escape(label),
        escape(label)
    );
    for (i, v) in values.iter().enumerate() {
        if *v <= 0 {
            continue;
        }
        let bar = ((*v as f64 / max as f64) * h as f64).ceil().max(1.0) as usize;
        let _ = write!(
            svg,
            r#"<rect x="{}" y="{}" width="1.6" height="{bar}"/>"#,
            2 * i,
            h - bar
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A horizontal stacked bar per row: `(label, [(part class, count)])`.
pub fn stacked(rows: &[(String, Vec<(&'static str, i64)>)], label: &str) -> String {
    let row_h = 22;
    let label_w = 110.0;
    let width = 480.0;
    let h = row_h * rows.len().max(1) + 18;
    let max = rows
        .iter()
        .map(|(_, parts)| parts.iter().map(|p| p.1).sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut svg = format!(
        r#"<svg class="stacked" viewBox="0 0 {width} {h}" role="img" aria-label="{}"><title>{}</title>"#,
        escape(label),
        escape(label)
    );
    for (i, (name, parts)) in rows.iter().enumerate() {
        let y = i * row_h;
        let _ = write!(
            svg,
            r#"<text x="0" y="{}" class="label">{}</text>"#,
            y + 15,
            escape(name)
        );
        let mut x = label_w;
        for (class, n) in parts {
            if *n <= 0 {
                continue;
            }
            let w = (*n as f64 / max) * (width - label_w - 40.0);
            let _ = write!(
                svg,
                r#"<rect class="{class}" x="{x:.1}" y="{}" width="{w:.1}" height="16"><title>{class}: {n}</title></rect>"#,
                y + 3
            );
            x += w;
        }
        let total: i64 = parts.iter().map(|p| p.1).sum();
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" class="total">{total}</text>"#,
            x + 4.0,
            y + 15
        );
    }
    let legend_y = h - 4;
    let mut x = 0;
    for class in ["sent", "delivered", "failed", "queued", "cancelled", "suppressed"] {
        let _ = write!(
            svg,
            r#"<rect class="{class}" x="{x}" y="{}" width="10" height="10"/><text x="{}" y="{legend_y}" class="legend">{class}</text>"#,
            legend_y - 9,
            x + 13
        );
        x += 80;
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_skip_empty_minutes() {
        let svg = bars(&[0, 5, 10], "lab <feed>");
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains(r#"height="24""#), "{svg}");
        assert!(svg.contains("lab &lt;feed&gt;"), "{svg}");
        assert!(!svg.contains("<feed>"));
    }

    #[test]
    fn stacked_bars_total_each_row() {
        let svg = stacked(&[("sms".into(), vec![("sent", 3), ("failed", 1)])], "report");
        assert!(svg.contains(">4</text>"), "{svg}");
        assert!(svg.contains("failed: 1"), "{svg}");
    }
}
