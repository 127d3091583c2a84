//! The drift statistics against SciPy and NumPy (fixtures/drift/stats.json,
//! made by scripts/make_drift_fixtures.py), through the monitor itself: a
//! profile built from the reference values, a window filled with the current
//! ones, and its report.

mod common;

use oxinfer_core::monitor::{Monitor, MonitorSpec, Profile, Role, Thresholds, Values};

fn cat_values(v: &[serde_json::Value]) -> (Vec<i32>, Vec<String>) {
    let mut vocab: Vec<String> = Vec::new();
    let codes = v
        .iter()
        .map(|x| match x.as_str() {
            None => -1,
            Some(s) => match vocab.iter().position(|c| c == s) {
                Some(i) => i as i32,
                None => {
                    vocab.push(s.to_string());
                    (vocab.len() - 1) as i32
                }
            },
        })
        .collect();
    (codes, vocab)
}

fn nums(v: &[serde_json::Value]) -> Vec<f64> {
    v.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect()
}

fn close(got: Option<f64>, want: f64, what: &str) {
    let got = got.unwrap_or_else(|| panic!("{what}: missing"));
    assert!((got - want).abs() <= 1e-9 * want.abs().max(1e-3), "{what}: {got} vs {want}");
}

#[test]
fn statistics_equal_scipy_and_numpy() {
    let text = std::fs::read_to_string(common::root().join("__test__/fixtures/drift/stats.json")).unwrap();
    let f: serde_json::Value = serde_json::from_str(&text).unwrap();
    for case in f["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let reference = case["reference"].as_array().unwrap();
        let current = case["current"].as_array().unwrap();
        let numeric = case["type"] == "number";
        let (ref_nums, cur_nums) = (nums(reference), nums(current));
        let (ref_cat, cur_cat) = (cat_values(reference), cat_values(current));
        fn values<'a>(numeric: bool, n: &'a [f64], c: &'a (Vec<i32>, Vec<String>)) -> Values<'a> {
            if numeric {
                Values::Num(n)
            } else {
                Values::Cat { codes: &c.0, vocab: &c.1 }
            }
        }
        let profile = Profile::build(reference.len(), &[("x", Role::Input, values(numeric, &ref_nums, &ref_cat))]);
        let spec = MonitorSpec { reference: profile, window: current.len(), check_every: usize::MAX, min_interval_ms: 0, thresholds: Thresholds::default(), feedback: None, log: None, window_ms: 0, metrics: Vec::new() };
        let m = std::sync::Arc::new(Monitor::new(spec).unwrap());
        m.observe(current.len(), &[("x", values(numeric, &cur_nums, &cur_cat))]);
        let r = m.report();
        let d = &r.features[0];
        assert_eq!(d.records, current.len(), "{name}");
        if numeric {
            close(d.psi, case["psi"].as_f64().unwrap(), &format!("{name}: psi"));
            close(d.ks, case["ks"].as_f64().unwrap(), &format!("{name}: ks"));
        } else {
            close(d.chi2, case["chi2"].as_f64().unwrap(), &format!("{name}: chi2"));
            close(d.chi2_p, case["chi2_p"].as_f64().unwrap(), &format!("{name}: chi2 p"));
            close(d.js, case["js"].as_f64().unwrap(), &format!("{name}: js"));
        }
        // Flagged where the shift is both significant and material; 120
        // values from a wider spread are neither at alpha 0.001 (KS p 0.31).
        let shifted = ["mean shifted", "missing values grow", "shifted proportions", "an unseen category"].iter().any(|p| name.starts_with(p));
        assert_eq!(d.drifted, shifted, "{name}: {d:?}");
    }
}

#[test]
fn windows_slide_and_events_fire_on_changes() {
    let reference: Vec<f64> = (0..1000).map(|i| ((i * 7919) % 1000) as f64 / 1000.0).collect();
    let profile = Profile::build(reference.len(), &[("x", Role::Input, Values::Num(&reference))]);
    let m = std::sync::Arc::new(Monitor::new(MonitorSpec { reference: profile, window: 200, check_every: 50, min_interval_ms: 0, thresholds: Thresholds::default(), feedback: None, log: None, window_ms: 0, metrics: Vec::new() }).unwrap());
    // Checks on this thread, so that each one is seen in turn.
    m.set_inline_checks(true);
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&events);
    m.set_sink(Some(std::sync::Arc::new(move |e: &oxinfer_core::monitor::DriftEvent| sink.lock().unwrap().push((e.records, e.feature.drifted)))));
    let same: Vec<f64> = (0..400).map(|i| ((i * 104729) % 1000) as f64 / 1000.0).collect();
    let shifted: Vec<f64> = same.iter().map(|x| x + 0.5).collect();
    for chunk in same.chunks(25) {
        m.observe(chunk.len(), &[("x", Values::Num(chunk))]);
    }
    assert!(events.lock().unwrap().is_empty(), "no drift on the reference's own distribution");
    for chunk in shifted.chunks(25) {
        m.observe(chunk.len(), &[("x", Values::Num(chunk))]);
    }
    for chunk in same.chunks(25) {
        m.observe(chunk.len(), &[("x", Values::Num(chunk))]);
    }
    let ev = events.lock().unwrap().clone();
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(ev[0].1 && ev[0].0 > 400 && ev[0].0 <= 500, "drift seen within 100 shifted records: {ev:?}");
    assert!(!ev[1].1 && ev[1].0 > 800, "and cleared once the window holds unshifted records again: {ev:?}");
    let r = m.report();
    assert_eq!((r.records, r.window, r.checks), (1200, 200, 24));
    // A bad spec is refused.
    let bad = MonitorSpec { window: 1, ..m.spec().clone() };
    assert_eq!(Monitor::new(bad).err().unwrap().code(), "ERR_INVALID_SPEC");
}

#[test]
fn a_time_window_lets_old_values_go() {
    let reference: Vec<f64> = (0..1000).map(|i| ((i * 7919) % 1000) as f64 / 1000.0).collect();
    let profile = Profile::build(reference.len(), &[("x", Role::Input, Values::Num(&reference))]);
    let spec = MonitorSpec { reference: profile, window: 500, check_every: usize::MAX, min_interval_ms: 0, thresholds: Thresholds::default(), feedback: None, log: None, window_ms: 400, metrics: Vec::new() };
    let m = Monitor::new(spec).unwrap();
    // The clock is given, so nothing here depends on how fast the machine is.
    let t0 = std::time::Instant::now();
    let at = |ms: u64| t0 + std::time::Duration::from_millis(ms);
    let shifted: Vec<f64> = reference.iter().take(300).map(|x| x + 0.5).collect();
    m.push_at(300, &[("x", Values::Num(&shifted))], at(0));
    let r = m.report_at(at(1));
    assert_eq!(r.features[0].records, 300);
    assert!(r.features[0].drifted);
    // 400 more at 250 ms: the count cap (500) drops the oldest 200 now.
    let same: Vec<f64> = reference.iter().skip(300).take(400).copied().collect();
    m.push_at(400, &[("x", Values::Num(&same))], at(250));
    assert_eq!(m.report_at(at(250)).features[0].records, 500);
    // At 401 ms the first push's 100 remaining values are past 400 ms; the 400 stay.
    assert_eq!(m.report_at(at(400)).features[0].records, 500);
    let r = m.report_at(at(401));
    assert_eq!(r.features[0].records, 400);
    assert!(!r.features[0].drifted, "{:?}", r.features[0]);
    assert_eq!(m.report_at(at(650)).features[0].records, 400);
    assert_eq!(m.report_at(at(651)).features[0].records, 0);
}
