//! The limit for the tokenizer benchmark: the Hugging Face `tokenizers` crate
//! (the version and features oxinfer uses) called directly from Rust, with no
//! Node.js in the way.
//!
//! Usage: oxinfer-bench-tokenizers <tokenizer.json> <corpus.txt> [rounds] [reps]
//!
//! Every round times `reps` passes of `Tokenizer::encode_batch` over all the
//! corpus lines (one batch; rayon spreads it over all cores, as in oxinfer),
//! with special tokens added (oxinfer's default) and the ids copied into one
//! flat Vec<i32> (what oxinfer hands to JS). Also timed, for reference: batches
//! of 256 and 1024 lines, the corpus encoded line by line on one thread
//! (`Tokenizer::encode`), `Tokenizer::clone()` + drop, and oxinfer's per-call
//! path (a clone of the tokenizer per `encode_batch`, whole corpus and batches
//! of 256). Prints one JSON object.

use std::time::Instant;

use tokenizers::{EncodeInput, Tokenizer};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn flat_ids(encs: &[tokenizers::Encoding], out: &mut Vec<i32>) {
    out.clear();
    for e in encs {
        out.extend(e.get_ids().iter().map(|&i| i as i32));
    }
}

fn inputs<'a>(ls: &[&'a str]) -> Vec<EncodeInput<'a>> {
    ls.iter().map(|&l| l.into()).collect()
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: {} <tokenizer.json> <corpus.txt> [rounds] [reps]", args[0]);
        std::process::exit(2);
    }
    let rounds: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let reps: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(5);

    let t = Instant::now();
    let tk = Tokenizer::from_file(&args[1])?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let text = std::fs::read_to_string(&args[2])?;
    let lines: Vec<&str> = text.lines().collect();
    let n = lines.len();

    let mut ids = Vec::new();
    let mut tokens = 0usize;
    // Warm-up (fills caches, starts rayon's pool).
    for _ in 0..2 {
        let encs = tk.encode_batch(inputs(&lines), true)?;
        flat_ids(&encs, &mut ids);
        tokens = ids.len();
    }

    let mut whole = Vec::new();
    let mut b256 = Vec::new();
    let mut b1024 = Vec::new();
    let mut seq = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..reps {
            let encs = tk.encode_batch(inputs(&lines), true)?;
            flat_ids(&encs, &mut ids);
        }
        whole.push((n * reps) as f64 / t.elapsed().as_secs_f64());

        for (size, out) in [(256usize, &mut b256), (1024usize, &mut b1024)] {
            let t = Instant::now();
            for _ in 0..reps {
                for chunk in lines.chunks(size) {
                    let encs = tk.encode_batch(inputs(chunk), true)?;
                    flat_ids(&encs, &mut ids);
                }
            }
            out.push((n * reps) as f64 / t.elapsed().as_secs_f64());
        }

        let t = Instant::now();
        let mut count = 0usize;
        for &l in &lines {
            count += tk.encode(l, true)?.len();
        }
        assert_eq!(count, tokens);
        seq.push(n as f64 / t.elapsed().as_secs_f64());
    }

    // What oxinfer's TextTokenizer::encode_batch does per call
    // (crates/oxinfer-core/src/text/mod.rs): clone the tokenizer, set
    // truncation and padding on the clone, encode, drop the clone.
    let oxinfer_path = |ls: &[&str]| -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
        let mut c = tk.clone();
        c.with_truncation(None)?;
        c.with_padding(None);
        Ok(c.encode_batch(inputs(ls), true)?.len())
    };
    let mut clone_path_whole = Vec::new();
    let mut clone_path_256 = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..reps {
            oxinfer_path(&lines)?;
        }
        clone_path_whole.push((n * reps) as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        for chunk in lines.chunks(256) {
            oxinfer_path(chunk)?;
        }
        clone_path_256.push(n as f64 / t.elapsed().as_secs_f64());
    }

    let mut clone_ms = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let c = tk.clone();
        drop(std::hint::black_box(c));
        clone_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }

    let out = serde_json::json!({
        "lines": n,
        "tokens": tokens,
        "rounds": rounds,
        "repsPerRound": reps,
        "threads": std::thread::available_parallelism().map(|p| p.get()).unwrap_or(1),
        "loadMs": load_ms,
        "wholeCorpusLinesPerSec": { "median": median(whole.clone()), "rounds": whole },
        "batch256LinesPerSec": { "median": median(b256.clone()), "rounds": b256 },
        "batch1024LinesPerSec": { "median": median(b1024.clone()), "rounds": b1024 },
        "sequentialOneThreadLinesPerSec": { "median": median(seq.clone()), "rounds": seq },
        "tokenizerCloneDropMs": { "median": median(clone_ms.clone()), "samples": clone_ms },
        "clonePerCallWholeLinesPerSec": { "median": median(clone_path_whole.clone()), "rounds": clone_path_whole },
        "clonePerCallBatch256LinesPerSec": { "median": median(clone_path_256.clone()), "rounds": clone_path_256 },
    });
    println!("{out}");
    Ok(())
}
