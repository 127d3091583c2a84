//! Outcomes fed back to a graph: finding the switches whose `feedback`
//! trials kept a prediction for a request id (nested graphs' included),
//! checking the outcome against all of them, then applying it.

use std::sync::{Arc, Mutex};

use crate::graph::build::{Exec, Graph, Plan};
use crate::graph::switch::SwitchState;
use crate::graph::trial::Decision;
use crate::monitor::feedback::{Refusal, Truth};

impl Graph {
    fn trial_switches(&self, out: &mut Vec<(String, Arc<Plan>, usize)>, prefix: &str) {
        for (i, n) in self.plan.nodes.iter().enumerate() {
            match &n.exec {
                Exec::Switch { state, .. } if state.lock().unwrap_or_else(|e| e.into_inner()).trial().is_some() => out.push((format!("{prefix}{}", n.name), Arc::clone(&self.plan), i)),
                Exec::Graph(g) => g.trial_switches(out, &format!("{prefix}{}/", n.name)),
                _ => {}
            }
        }
    }

    /// The outcome of request `id` (one truth per row it had), fed to every
    /// `feedback` switch that kept a prediction for it. Returns the
    /// decisions it made, by switch node ("outer/inner" when nested).
    pub fn feedback(&self, id: &str, truths: &[Truth]) -> std::result::Result<Vec<(String, Decision)>, Refusal> {
        let mut switches = Vec::new();
        self.trial_switches(&mut switches, "");
        if switches.is_empty() {
            return Err(Refusal::UnknownId("this graph takes no feedback: no switch has a 'feedback' policy".into()));
        }
        let states: Vec<(String, &Mutex<SwitchState>)> = switches
            .iter()
            .filter_map(|(name, plan, i)| match &plan.nodes[*i].exec {
                Exec::Switch { state, .. } => Some((name.clone(), &**state)),
                _ => None,
            })
            .collect();
        let lock = |m: &Mutex<SwitchState>| m.lock().unwrap_or_else(|e| e.into_inner()).trial().is_some_and(|t| t.knows(id));
        let knowing: Vec<&(String, &Mutex<SwitchState>)> = states.iter().filter(|(_, m)| lock(m)).collect();
        if knowing.is_empty() {
            // Any trial's refusal names the id and how many are kept.
            let (_, m) = &states[0];
            return m.lock().unwrap_or_else(|e| e.into_inner()).check(id, truths).map(|_| Vec::new());
        }
        // Checked everywhere first, so that a refusal applies nothing.
        for (_, m) in &knowing {
            m.lock().unwrap_or_else(|e| e.into_inner()).check(id, truths)?;
        }
        let mut decisions = Vec::new();
        for (name, m) in knowing {
            if let Some(d) = m.lock().unwrap_or_else(|e| e.into_inner()).answer(id, truths)? {
                decisions.push((name.clone(), d));
            }
        }
        Ok(decisions)
    }
}

