//! A bot's flow graph for the synthetic data set: 8 to 20 steps
//! (`s01`, `s02`, ...) of the types a conversation designer uses, and
//! weighted edges between them. Conversations walk it from the start step
//! `s01`; their transition events are the edges taken.
//!
//! The graph is drawn from the caller's RNG: every step is reachable from
//! `s01` (each step gets an edge from one of the four steps before it), every
//! non-`end` step has at least one way out, conditions branch, and a few
//! back edges make retry loops. The last step is always an `end` step.

use rand::Rng;

/// The type of a step, as written in `from_step_type` / `to_step_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StepKind {
    /// The bot says something.
    BotDialog,
    /// The bot asks and waits for the user's answer.
    Input,
    /// A call to a back-end system.
    ApiCall,
    /// A branch on collected data.
    Condition,
    /// Hand the conversation over to a human agent.
    Handover,
    /// End of the flow.
    End,
}

impl StepKind {
    /// The type's name in the data.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            StepKind::BotDialog => "bot_dialog",
            StepKind::Input => "input",
            StepKind::ApiCall => "api_call",
            StepKind::Condition => "condition",
            StepKind::Handover => "handover",
            StepKind::End => "end",
        }
    }
}

/// Step ids by index; a graph has at most this many steps.
const STEP_IDS: [&str; 20] = [
    "s01", "s02", "s03", "s04", "s05", "s06", "s07", "s08", "s09", "s10", "s11", "s12", "s13",
    "s14", "s15", "s16", "s17", "s18", "s19", "s20",
];
const MIN_STEPS: usize = 8;
const MAX_STEPS: usize = STEP_IDS.len();

/// Weights of the types of the middle steps (the start step is a dialog,
/// the last one an end, and one may be a handover).
const MIDDLE_KINDS: [(StepKind, u32); 4] = [
    (StepKind::BotDialog, 32),
    (StepKind::Input, 30),
    (StepKind::ApiCall, 13),
    (StepKind::Condition, 17),
];

/// A bot's steps and weighted edges. Step indices are `u8` (at most 20).
#[derive(Debug, Clone)]
pub(super) struct FlowGraph {
    kinds: Vec<StepKind>,
    /// `edges[s]` = the successors of step `s` with their weights.
    edges: Vec<Vec<(u8, u32)>>,
}

impl FlowGraph {
    /// The step every conversation starts in.
    pub(super) const START: u8 = 0;

    /// Draws a graph.
    pub(super) fn generate<R: Rng>(rng: &mut R) -> Self {
        let n = rng.random_range(MIN_STEPS..=MAX_STEPS);
        let mut kinds = vec![StepKind::BotDialog; n];
        for kind in kinds.iter_mut().take(n - 1).skip(1) {
            *kind = MIDDLE_KINDS[super::catalog::pick_weighted(rng, &MIDDLE_KINDS)].0;
        }
        kinds[n - 1] = StepKind::End;
        // Larger flows often have a second way out ("goodbye" vs "done").
        if n >= 12 && rng.random_bool(0.5) {
            kinds[n - 2] = StepKind::End;
        }
        if rng.random_bool(0.75) {
            let at = rng.random_range(2..n - 2);
            if kinds[at] != StepKind::End {
                kinds[at] = StepKind::Handover;
            }
        }

        let mut graph = FlowGraph {
            kinds,
            edges: vec![Vec::new(); n],
        };
        // Reachability: every step has an edge from one of the 4 steps before it.
        for i in 1..n {
            let candidates: Vec<usize> = (i.saturating_sub(4)..i)
                .filter(|&p| graph.kinds[p] != StepKind::End)
                .collect();
            let parent = if candidates.is_empty() {
                0
            } else {
                candidates[rng.random_range(0..candidates.len())]
            };
            let weight = rng.random_range(2..=6);
            graph.add_edge(parent, i, weight);
        }
        // Out-degrees by step type, with forward jumps and some retry loops.
        for i in 0..n {
            let wanted = match graph.kinds[i] {
                StepKind::End => continue,
                StepKind::Condition => 2 + usize::from(rng.random_bool(0.4)),
                StepKind::Input | StepKind::ApiCall => 1 + usize::from(rng.random_bool(0.5)),
                StepKind::BotDialog => 1 + usize::from(rng.random_bool(0.2)),
                StepKind::Handover => 1,
            };
            let mut attempts = 0;
            while graph.edges[i].len() < wanted && attempts < 20 {
                attempts += 1;
                if i > 0 && rng.random_bool(0.15) {
                    let target = rng.random_range(0..i);
                    graph.add_edge(i, target, 1);
                } else {
                    let ahead = (n - 1 - i).min(4);
                    let target = i + 1 + rng.random_range(0..ahead);
                    let weight = rng.random_range(2..=6);
                    graph.add_edge(i, target, weight);
                }
            }
            if graph.edges[i].is_empty() {
                graph.add_edge(i, n - 1, 1);
            }
        }
        graph
    }

    /// Adds edge `from -> to` unless it exists or is a self loop.
    fn add_edge(&mut self, from: usize, to: usize, weight: u32) {
        let (Ok(to8), true) = (u8::try_from(to), from != to) else {
            return;
        };
        let out = &mut self.edges[from];
        if !out.iter().any(|&(t, _)| t == to8) {
            out.push((to8, weight));
        }
    }

    /// Number of steps.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.kinds.len()
    }

    /// The type of `step`.
    pub(super) fn kind(&self, step: u8) -> StepKind {
        self.kinds
            .get(usize::from(step))
            .copied()
            .unwrap_or(StepKind::End)
    }

    /// The id of `step` (`s01`, ...).
    pub(super) fn step_id(step: u8) -> &'static str {
        STEP_IDS.get(usize::from(step)).copied().unwrap_or("s00")
    }

    /// The successors of `step`.
    #[cfg(test)]
    pub(super) fn successors(&self, step: u8) -> &[(u8, u32)] {
        self.edges
            .get(usize::from(step))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The step after `step`, drawn by edge weight; from an `end` step (no
    /// successors) the user starts over at [`FlowGraph::START`].
    pub(super) fn next<R: Rng>(&self, step: u8, rng: &mut R) -> u8 {
        let Some(out) = self.edges.get(usize::from(step)) else {
            return Self::START;
        };
        match out.len() {
            0 => Self::START,
            1 => out[0].0,
            _ => out[super::catalog::pick_weighted(rng, out)].0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn graphs_are_well_formed() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..500 {
            let g = FlowGraph::generate(&mut rng);
            let n = g.len();
            assert!((MIN_STEPS..=MAX_STEPS).contains(&n));
            assert_eq!(g.kind(0), StepKind::BotDialog);
            assert_eq!(g.kind((n - 1) as u8), StepKind::End);
            // Every step reachable from the start.
            let mut seen = vec![false; n];
            let mut stack = vec![FlowGraph::START];
            while let Some(s) = stack.pop() {
                if std::mem::replace(&mut seen[usize::from(s)], true) {
                    continue;
                }
                stack.extend(g.successors(s).iter().map(|&(t, _)| t));
            }
            assert!(seen.iter().all(|&x| x), "unreachable step in {g:?}");
            for s in 0..n as u8 {
                let out = g.successors(s);
                assert_eq!(out.is_empty(), g.kind(s) == StepKind::End, "{g:?}");
                assert!(out.iter().all(|&(t, _)| t != s && usize::from(t) < n));
                if g.kind(s) == StepKind::Condition {
                    assert!(out.len() >= 2 || usize::from(s) + 2 >= n, "{g:?}");
                }
            }
        }
    }

    #[test]
    fn step_ids_are_zero_padded() {
        assert_eq!(FlowGraph::step_id(0), "s01");
        assert_eq!(FlowGraph::step_id(19), "s20");
    }
}
