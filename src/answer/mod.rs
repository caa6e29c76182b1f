//! Answers: the JSON shapes of SPEC 5, and other renderings of them.
//!
//! [`SeriesAnswer`] (conversations, insights, usage) and [`FlowAnswer`]
//! serialise with serde to exactly SPEC 5's JSON. [`arrow`] turns them into
//! Arrow record batches for Arrow users, [`text`] into CSV or an aligned
//! table for terminals.

pub mod arrow;
pub mod text;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::query::div_round_half_up;

/// The label of a null group value (SPEC 5).
pub const NULL_LABEL: &str = "(none)";

/// The answer of a series query: `{"data": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesAnswer {
    /// The series and their x axis.
    pub data: SeriesData,
}

/// Series over a shared x axis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesData {
    /// One per group (or exactly one when ungrouped), sorted by label.
    pub series: Vec<Series>,
    /// `series_labels[i]` names `series[i]`.
    pub series_labels: Vec<String>,
    /// RFC 3339 bucket starts; `values[i]` belongs to `x_values[i]`.
    pub x_values: Vec<String>,
}

/// One series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Series {
    /// One value per x value.
    pub values: Vec<u64>,
    /// `sum / len(values)`, rounded half up.
    pub mean: u64,
    /// Largest value.
    pub max: u64,
    /// Smallest value.
    pub min: u64,
    /// Sum of the values.
    pub sum: u64,
    /// Group-by field → value (`(none)` for null); empty when ungrouped.
    pub labels: BTreeMap<String, String>,
}

impl Series {
    /// A series with its summary numbers computed from `values`.
    pub fn new(values: Vec<u64>, labels: BTreeMap<String, String>) -> Self {
        let sum: u128 = values.iter().map(|&v| v as u128).sum();
        Self {
            mean: div_round_half_up(sum, values.len() as u128),
            max: values.iter().copied().max().unwrap_or(0),
            min: values.iter().copied().min().unwrap_or(0),
            sum: u64::try_from(sum).unwrap_or(u64::MAX),
            values,
            labels,
        }
    }
}

/// The answer of a flow query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowAnswer {
    /// The bot asked for.
    pub bot_id: String,
    /// The conversation asked for.
    pub conversation_id: String,
    /// The conversation's user (`""` when null).
    pub user_id: String,
    /// Transitions in `(timestamp, event_id)` order.
    pub transitions: Vec<FlowTransition>,
}

/// One transition of a flow answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowTransition {
    /// The event id.
    pub id: String,
    /// The step left.
    pub from_step: Step,
    /// The step entered.
    pub to_step: Step,
    /// 1-based position among all the conversation's transitions.
    pub depth: u64,
    /// RFC 3339 UTC, 0, 3 or 6 fractional digits.
    pub timestamp: String,
}

/// A flow step (`""` for null strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The step id.
    pub id: String,
    /// The step type.
    #[serde(rename = "type")]
    pub step_type: String,
}

/// Any answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Answer {
    /// Conversations, insights, usage.
    Series(SeriesAnswer),
    /// Flow.
    Flow(FlowAnswer),
}

impl Answer {
    /// The answer as SPEC 5 JSON (compact).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_summary_numbers() {
        let s = Series::new(vec![3, 0, 5], BTreeMap::new());
        assert_eq!((s.sum, s.min, s.max, s.mean), (8, 0, 5, 3));
        let s = Series::new(vec![1, 2], BTreeMap::new());
        assert_eq!(s.mean, 2, "1.5 rounds half up");
        let s = Series::new(vec![], BTreeMap::new());
        assert_eq!((s.sum, s.min, s.max, s.mean), (0, 0, 0, 0));
    }

    #[test]
    fn json_shape_matches_spec() {
        let answer = SeriesAnswer {
            data: SeriesData {
                series: vec![Series::new(
                    vec![3, 0, 5],
                    [("channel_type".to_string(), "web".to_string())].into(),
                )],
                series_labels: vec!["web".into()],
                x_values: vec!["2024-03-01T00:00:00Z".into()],
            },
        };
        let v: serde_json::Value = serde_json::to_value(&answer).unwrap();
        assert_eq!(v["data"]["series"][0]["labels"]["channel_type"], "web");
        assert_eq!(v["data"]["series"][0]["sum"], 8);
        let flow = FlowAnswer {
            bot_id: "b1".into(),
            conversation_id: "c1".into(),
            user_id: "".into(),
            transitions: vec![FlowTransition {
                id: "e7".into(),
                from_step: Step {
                    id: "s1".into(),
                    step_type: "bot_dialog".into(),
                },
                to_step: Step {
                    id: "s2".into(),
                    step_type: "input".into(),
                },
                depth: 1,
                timestamp: "2024-03-01T10:00:00.250Z".into(),
            }],
        };
        let v = serde_json::to_value(Answer::Flow(flow)).unwrap();
        assert_eq!(v["transitions"][0]["from_step"]["type"], "bot_dialog");
        assert_eq!(v["user_id"], "");
    }
}
