//! The floor for the latency benchmark: `ort` called directly from Rust on the
//! same libonnxruntime.so.1 that oxinfer and onnxruntime-node use, with the
//! session options oxinfer uses by default (see
//! crates/oxinfer-core/src/onnx/model.rs): intra-op threads 1, inter-op
//! threads 1, intra/inter-op spinning off, graph optimisation level 3.
//!
//! Usage: oxinfer-bench-floor <libonnxruntime.so.1> <model.onnx> [iterations] [warmup] [rounds]
//! Prints one JSON object on stdout.

use std::time::Instant;

use ort::session::builder::GraphOptimizationLevel;
use ort::session::{OutputSelector, RunOptions, Session};
use ort::value::TensorRef;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (percentile(&v, 0.5), percentile(&v, 0.99), mean)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: {} <libonnxruntime.so.1> <model.onnx> [iterations] [warmup] [rounds]", args[0]);
        std::process::exit(2);
    }
    let lib = &args[1];
    let model = &args[2];
    let iterations: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(20_000);
    let warmup: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(2_000);
    let rounds: usize = args.get(5).map(|s| s.parse()).transpose()?.unwrap_or(3);

    let env = ort::init_from(lib)?.with_name("oxinfer-bench-floor").with_telemetry(false).build()?;
    let mut session = Session::builder(&env)?
        .with_intra_threads(1)?
        .with_inter_threads(1)?
        .with_intra_op_spinning(false)?
        .with_inter_op_spinning(false)?
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .commit_from_file(model)?;

    let input: Vec<f32> = (0..16).map(|i| (i as f32) * 0.1 - 0.8).collect();
    let shape = [1usize, 16];
    let sink = std::cell::Cell::new(0.0f32);

    // Variant "plain": session.run with a borrowed input, output copied to a Vec.
    let plain = |session: &mut Session| -> Result<f64, Box<dyn std::error::Error>> {
        let t0 = Instant::now();
        let outs = session.run(ort::inputs!["x" => TensorRef::from_array_view((shape, &input[..]))?])?;
        let (_, y) = outs["y"].try_extract_tensor::<f32>()?;
        let owned = y.to_vec();
        let dt = t0.elapsed().as_secs_f64() * 1e6;
        sink.set(sink.get() + owned[0]);
        Ok(dt)
    };
    // Variant "runOptions": what oxinfer's backend does per run on top of
    // "plain": a fresh RunOptions with an output selector (run_with_options).
    let with_opts = |session: &mut Session| -> Result<f64, Box<dyn std::error::Error>> {
        let t0 = Instant::now();
        let opts = RunOptions::new()?.with_outputs(OutputSelector::no_default().with("y"));
        let mut outs = session.run_with_options(ort::inputs!["x" => TensorRef::from_array_view((shape, &input[..]))?], &opts)?;
        let v = outs.remove("y").ok_or("no output y")?;
        let (_, y) = v.try_extract_tensor::<f32>()?;
        let owned = y.to_vec();
        let dt = t0.elapsed().as_secs_f64() * 1e6;
        sink.set(sink.get() + owned[0]);
        Ok(dt)
    };

    for _ in 0..warmup {
        plain(&mut session)?;
        with_opts(&mut session)?;
    }
    let mut round_plain = Vec::new();
    let mut round_opts = Vec::new();
    let mut all_plain = Vec::new();
    let mut all_opts = Vec::new();
    for _ in 0..rounds {
        // Interleave the two variants in blocks of 1000 to share the noise.
        let mut p = Vec::with_capacity(iterations);
        let mut o = Vec::with_capacity(iterations);
        let mut done = 0;
        while done < iterations {
            let n = 1000.min(iterations - done);
            for _ in 0..n {
                p.push(plain(&mut session)?);
            }
            for _ in 0..n {
                o.push(with_opts(&mut session)?);
            }
            done += n;
        }
        round_plain.push(stats(p.clone()).0);
        round_opts.push(stats(o.clone()).0);
        all_plain.extend(p);
        all_opts.extend(o);
    }
    let (pm, p99, pmean) = stats(all_plain);
    let (om, o99, omean) = stats(all_opts);
    println!(
        "{{\"iterations\":{},\"rounds\":{},\"plain\":{{\"medianUs\":{:.3},\"p99Us\":{:.3},\"meanUs\":{:.3},\"roundMediansUs\":{:?}}},\"runOptions\":{{\"medianUs\":{:.3},\"p99Us\":{:.3},\"meanUs\":{:.3},\"roundMediansUs\":{:?}}},\"sink\":{}}}",
        iterations,
        rounds,
        pm,
        p99,
        pmean,
        round_plain,
        om,
        o99,
        omean,
        round_opts,
        sink.get()
    );
    Ok(())
}
