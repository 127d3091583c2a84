//! The model repository: one folder per model, numbered version folders in
//! each, an optional configuration beside them. Loads at start, on request
//! (load/unload) and, when polling, whenever a model's files change; a
//! version that fails to load leaves the one serving in place.

pub mod config;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;


use crate::error::{Result, ServerError};
use crate::model::Version;
use config::{ModelConfig, VersionPolicy};

/// A model's state as the repository index reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Ready,
    Unavailable,
}

/// One model: the versions serving, and why it is unavailable if it is.
pub struct Entry {
    pub versions: BTreeMap<u64, Arc<Version>>,
    pub state: State,
    pub reason: String,
    /// The files' fingerprint when last loaded (polling compares it).
    pub stamp: Stamp,
}

/// Names, sizes and modification times of everything in a model's folder.
pub type Stamp = Vec<(PathBuf, u64, Option<SystemTime>)>;

pub struct Repository {
    pub root: PathBuf,
    engines: crate::model::Engines,
    models: RwLock<BTreeMap<String, Entry>>,
    /// One load at a time, so that an API load and a polling pass of the
    /// same model cannot interleave and leave the older result installed.
    loading: std::sync::Mutex<()>,
}

/// A model name that is one plain folder name: no separators, no `..`.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty() && name.len() <= 200 && !name.starts_with('.') && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ServerError::bad(format!("'{}' is not a valid model name (letters, digits, '-', '_' and '.', not starting with '.')", name.escape_debug())))
    }
}

impl Repository {
    pub fn new(root: &Path, engines: crate::model::Engines) -> Result<Repository> {
        let root = root.canonicalize().map_err(|e| oxinfer_core::Error::file("the model repository", root, e))?;
        if !root.is_dir() {
            return Err(ServerError::Repository(format!("the model repository '{}' is not a folder", root.display())));
        }
        Ok(Repository { root, engines, models: RwLock::new(BTreeMap::new()), loading: std::sync::Mutex::new(()) })
    }

    /// The model folders present on disk.
    pub fn on_disk(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| check_name(n).is_ok() && !n.starts_with('.'))
            .collect();
        out.sort();
        out
    }

    /// Whether a version folder of `name` holds a graph (which needs the
    /// models it names loaded first).
    pub fn is_graph(&self, name: &str) -> bool {
        check_name(name).is_ok() && versions(&self.root.join(name)).iter().any(|v| self.root.join(name).join(v.to_string()).join("graph.json").is_file())
    }

    /// The serving version `version` of `name` (the latest when none is given).
    pub fn get(&self, name: &str, version: Option<&str>) -> Result<Arc<Version>> {
        check_name(name)?;
        let models = self.models.read().unwrap_or_else(|e| e.into_inner());
        let entry = models.get(name).filter(|e| e.state == State::Ready).ok_or_else(|| ServerError::NotFound(format!("model '{name}' is not ready (unknown or unloaded)")))?;
        match version {
            None | Some("") => entry.versions.values().next_back().cloned().ok_or_else(|| ServerError::NotFound(format!("model '{name}' has no version ready"))),
            Some(v) => {
                let n: u64 = v.parse().map_err(|_| ServerError::bad(format!("version '{}' is not a number", v.escape_debug())))?;
                entry.versions.get(&n).cloned().ok_or_else(|| ServerError::NotFound(format!("model '{name}' has no version {n} ready")))
            }
        }
    }

    /// Every ready version of every model.
    pub fn all(&self) -> Vec<Arc<Version>> {
        let models = self.models.read().unwrap_or_else(|e| e.into_inner());
        models.values().filter(|e| e.state == State::Ready).flat_map(|e| e.versions.values().cloned()).collect()
    }

    /// Whether every model loaded is ready (the server's readiness).
    pub fn all_ready(&self) -> bool {
        let models = self.models.read().unwrap_or_else(|e| e.into_inner());
        models.values().all(|e| e.state == State::Ready || e.reason == "unloaded")
    }

    /// The index: every model on disk or loaded, with its state.
    pub fn index(&self, ready_only: bool) -> Vec<serde_json::Value> {
        let models = self.models.read().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = self.on_disk();
        names.extend(models.keys().cloned());
        names.sort();
        names.dedup();
        let mut out = Vec::new();
        for n in names {
            match models.get(&n) {
                Some(e) if e.state == State::Ready => {
                    // The reason says when a newer version failed to load beside them.
                    for v in e.versions.keys() {
                        out.push(serde_json::json!({ "name": n, "version": v.to_string(), "state": "READY", "reason": e.reason }));
                    }
                }
                Some(e) if !ready_only => out.push(serde_json::json!({ "name": n, "state": "UNAVAILABLE", "reason": e.reason })),
                None if !ready_only => out.push(serde_json::json!({ "name": n, "state": "UNAVAILABLE", "reason": "not loaded" })),
                _ => {}
            }
        }
        out
    }

    /// Loads (or reloads) `name` with the versions its policy selects. On
    /// failure the versions already serving keep serving and the reason is
    /// recorded. Blocking: call it off the async runtime.
    pub fn load(&self, name: &str, config: Option<serde_json::Value>) -> Result<()> {
        check_name(name)?;
        let _one = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        self.load_locked(name, config)
    }

    /// A polling pass's reload: skipped when the model was unloaded through
    /// the API since the pass looked (checked under the load lock).
    pub fn reload_changed(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let _one = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        let unloaded = self.models.read().unwrap_or_else(|e| e.into_inner()).get(name).is_some_and(|e| e.reason == "unloaded");
        if unloaded {
            return Ok(());
        }
        self.load_locked(name, None)
    }

    fn load_locked(&self, name: &str, config: Option<serde_json::Value>) -> Result<()> {
        let dir = self.root.join(name);
        if !dir.is_dir() {
            let e = ServerError::bad(format!("no model folder '{name}' in the repository"));
            tracing::warn!(model = name, error = %e, "model failed to load");
            return Err(e);
        }
        let stamp = stamp(&dir);
        let loaded = (|| -> Result<BTreeMap<u64, Arc<Version>>> {
            let config = match config {
                Some(v) => ModelConfig::from_value(v).map_err(|e| ServerError::bad(format!("the configuration given for '{name}': {e}")))?,
                None => ModelConfig::read(&dir)?,
            };
            let present = versions(&dir);
            let policy = config.version_policy.clone().unwrap_or(VersionPolicy::Latest { num_versions: 1 });
            let chosen = policy.select(&present);
            if chosen.is_empty() {
                return Err(ServerError::Repository(format!("model '{name}' has no version folder that its version policy selects (found {present:?})")));
            }
            let mut out = BTreeMap::new();
            for v in chosen {
                let resolve = |key: &str| self.get(key, None).ok();
                let version = Version::load(&self.engines, &self.root, name, v, &dir.join(v.to_string()), config.clone(), &resolve).map_err(|e| ServerError::Repository(format!("model '{name}' version {v}: {e}")))?;
                out.insert(v, Arc::new(version));
            }
            Ok(out)
        })();
        let mut models = self.models.write().unwrap_or_else(|e| e.into_inner());
        match loaded {
            Ok(versions) => {
                tracing::info!(model = name, versions = ?versions.keys().collect::<Vec<_>>(), "model loaded");
                models.insert(name.to_string(), Entry { versions, state: State::Ready, reason: String::new(), stamp });
                Ok(())
            }
            Err(e) => {
                tracing::warn!(model = name, error = %e, "model failed to load");
                match models.get_mut(name) {
                    // The old versions keep serving; the failure is on record.
                    Some(old) if old.state == State::Ready => {
                        old.reason = format!("a new version failed to load (still serving the old one): {e}");
                        old.stamp = stamp;
                    }
                    _ => {
                        models.insert(name.to_string(), Entry { versions: BTreeMap::new(), state: State::Unavailable, reason: e.to_string(), stamp });
                    }
                }
                Err(e)
            }
        }
    }

    /// Stops serving `name`. Requests already accepted finish on the
    /// versions they hold; the engines are freed when the last one ends.
    pub fn unload(&self, name: &str) -> Result<()> {
        check_name(name)?;
        // Not in the middle of a load of the same model, which would reinstate it.
        let _one = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        let mut models = self.models.write().unwrap_or_else(|e| e.into_inner());
        match models.get_mut(name) {
            Some(e) => {
                e.versions.clear();
                e.state = State::Unavailable;
                e.reason = "unloaded".into();
                Ok(())
            }
            None if self.root.join(name).is_dir() => Ok(()),
            None => Err(ServerError::bad(format!("no model '{name}' to unload"))),
        }
    }

    /// Models whose files changed since they were loaded, and new folders
    /// when `new_folders`: what a polling pass reloads. Models unloaded
    /// through the API stay unloaded. The files are walked without holding
    /// the lock that requests read.
    pub fn changed(&self, new_folders: bool) -> Vec<String> {
        let known: BTreeMap<String, Option<Stamp>> = {
            let models = self.models.read().unwrap_or_else(|e| e.into_inner());
            models.iter().map(|(n, e)| (n.clone(), (e.reason != "unloaded").then(|| e.stamp.clone()))).collect()
        };
        self.on_disk()
            .into_iter()
            .filter(|n| match known.get(n) {
                Some(None) => false,
                Some(Some(s)) => *s != stamp(&self.root.join(n)),
                None => new_folders,
            })
            .collect()
    }

    /// Models loaded that no longer have a folder.
    pub fn removed(&self) -> Vec<String> {
        let models = self.models.read().unwrap_or_else(|e| e.into_inner());
        models.keys().filter(|n| !self.root.join(n).is_dir()).cloned().collect()
    }

    /// Forgets a model entirely (its folder is gone).
    pub fn forget(&self, name: &str) {
        self.models.write().unwrap_or_else(|e| e.into_inner()).remove(name);
    }
}

/// Numbered version folders, ascending.
fn versions(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    v.sort_unstable();
    v
}

fn stamp(dir: &Path) -> Stamp {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                if out.len() < 10_000 {
                    stack.push(p.clone());
                }
            }
            out.push((p, m.len(), m.modified().ok()));
        }
    }
    out.sort();
    out
}
