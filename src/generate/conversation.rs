//! One synthetic conversation: its compact rows and the walk that produces
//! them.
//!
//! A conversation usually opens with a `session_start` event, then the bot
//! greets in its start step and the conversation walks the bot's
//! [`FlowGraph`]: every edge taken is a `transition` event whose
//! `message_id` is the message that triggered it, and the step entered
//! decides what follows (a bot message, a bot question and the user's answer,
//! a `handover_requested` event, `feedback` at the end, ...). The walk stops
//! after exactly the requested number of events, so long flows are cut short
//! like abandoned chats are. Times advance by bot latencies (sub-second to a
//! few seconds) and user think times (seconds to a minute, rarely hours).
//!
//! Rows are kept compact ([`Row`]: numbers and small indices, no strings);
//! strings are rendered once, when a batch's Arrow arrays are built.

use rand::Rng;

use super::flow_graph::{FlowGraph, StepKind};

/// The `event_type` of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `session_start`: the chat widget opened.
    SessionStart,
    /// `message`: a user or bot message.
    Message,
    /// `transition`: the flow moved from one step to another.
    Transition,
    /// `feedback`: the user rated the conversation or an answer.
    Feedback,
    /// `handover_requested`: a human agent was asked for.
    HandoverRequested,
}

impl Kind {
    /// The `event_type` string.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Kind::SessionStart => "session_start",
            Kind::Message => crate::schema::EVENT_TYPE_MESSAGE,
            Kind::Transition => crate::schema::EVENT_TYPE_TRANSITION,
            Kind::Feedback => "feedback",
            Kind::HandoverRequested => "handover_requested",
        }
    }
}

/// `Row::message` of a row without message.
pub(super) const NO_MESSAGE: u64 = u64::MAX;
/// `Row::from_step` / `Row::to_step` of a row that is not a transition.
pub(super) const NO_STEP: u8 = u8::MAX;
/// `Row::campaign` of a conversation without campaign.
pub(super) const NO_CAMPAIGN: u8 = u8::MAX;

/// Bits of [`Row::null_mask`]: which attributes the event lacks.
pub(super) mod null_bit {
    pub const TEAM: u8 = 1 << 0;
    pub const VERSION: u8 = 1 << 1;
    pub const USER: u8 = 1 << 2;
    pub const CHANNEL: u8 = 1 << 3;
    pub const LANGUAGE: u8 = 1 << 4;
    pub const CAMPAIGN_ID: u8 = 1 << 5;
    pub const CAMPAIGN_SOURCE: u8 = 1 << 6;
    /// All seven attribute bits.
    pub const ALL: u8 = (1 << 7) - 1;
}

/// One event in compact form; the batch builder renders the strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Row {
    /// Global sequence number of the event, scrambled into `event_id`.
    pub event_seq: u64,
    /// Event time, ms since the epoch.
    pub ts_ms: i64,
    /// Per-bot conversation number, rendered into `conversation_id`.
    pub conversation: u64,
    /// User number, rendered into `user_id`.
    pub user: u64,
    /// Message sequence number (scrambled into `message_id`) or [`NO_MESSAGE`].
    pub message: u64,
    /// Index into the bot catalog.
    pub bot: u8,
    /// The event type.
    pub kind: Kind,
    /// Index into `BOT_VERSIONS`.
    pub version: u8,
    /// Index into `CHANNELS`.
    pub channel: u8,
    /// Index into `LANGUAGES`.
    pub language: u8,
    /// Index into `CAMPAIGNS` or [`NO_CAMPAIGN`].
    pub campaign: u8,
    /// Attributes this event lacks (see [`null_bit`]).
    pub null_mask: u8,
    /// Transition: the step left, else [`NO_STEP`].
    pub from_step: u8,
    /// Transition: the step entered, else [`NO_STEP`].
    pub to_step: u8,
}

/// Share of non-first events that lack some attributes.
const PARTIAL_ATTRIBUTES_SHARE: f64 = 0.05;
/// Share of conversations that open with a `session_start` event.
const SESSION_START_SHARE: f64 = 0.95;
/// Chance that an `input` step sends its own question message.
const INPUT_ASKS_SHARE: f64 = 0.9;
/// Chance that the user asks for a human agent when answering an input.
const USER_ASKS_AGENT_SHARE: f64 = 0.03;
/// Chance that the user rates a bot answer.
const FEEDBACK_AFTER_ANSWER_SHARE: f64 = 0.10;
/// Chance that the user rates the conversation at an `end` step.
const FEEDBACK_AT_END_SHARE: f64 = 0.7;
/// Chance that a user message comes after a pause of 20 minutes to 4 hours.
const LONG_PAUSE_SHARE: f64 = 0.004;

/// Collects a conversation's rows up to its length.
struct Sink<'a> {
    out: &'a mut Vec<Row>,
    len: usize,
    template: Row,
}

impl Sink<'_> {
    fn full(&self) -> bool {
        self.out.len() >= self.len
    }

    fn push<R: Rng>(&mut self, rng: &mut R, kind: Kind, ts_ms: i64, message: u64, step: (u8, u8)) {
        if self.full() {
            return;
        }
        let mut row = self.template;
        row.kind = kind;
        row.ts_ms = ts_ms;
        row.message = message;
        (row.from_step, row.to_step) = step;
        if !self.out.is_empty() && rng.random_bool(PARTIAL_ATTRIBUTES_SHARE) {
            row.null_mask = rng.random_range(1..=null_bit::ALL);
        }
        self.out.push(row);
    }
}

/// Hands out message numbers.
fn next_message(counter: &mut u64) -> u64 {
    let id = *counter;
    *counter = counter.wrapping_add(1);
    id
}

/// How long the bot takes to answer, in ms.
fn bot_latency<R: Rng>(rng: &mut R) -> i64 {
    rng.random_range(300..=2_500)
}

/// How long the user takes to type, in ms: skewed to a few seconds, up to a
/// minute, and rarely a pause of hours (the user came back later).
fn user_think_time<R: Rng>(rng: &mut R) -> i64 {
    if rng.random_bool(LONG_PAUSE_SHARE) {
        return rng.random_range(20 * 60_000..=4 * 3_600_000);
    }
    let (a, b): (f64, f64) = (rng.random(), rng.random());
    1_500 + (a * b * 60_000.0) as i64
}

/// Appends the rows of one conversation of `len` events to `out` (which the
/// caller has emptied). `template` carries the conversation's identity and
/// attributes; `t0_ms` is its start.
pub(super) fn generate<R: Rng>(
    rng: &mut R,
    graph: &FlowGraph,
    template: Row,
    t0_ms: i64,
    len: usize,
    message_counter: &mut u64,
    out: &mut Vec<Row>,
) {
    let mut sink = Sink { out, len, template };
    let none = (NO_STEP, NO_STEP);
    let mut t = t0_ms;
    let mut last_message;
    if rng.random_bool(SESSION_START_SHARE) {
        sink.push(rng, Kind::SessionStart, t, NO_MESSAGE, none);
        t += rng.random_range(50..=1_500);
    } else {
        // Some channels (WhatsApp-like) start with the user's message.
        last_message = next_message(message_counter);
        sink.push(rng, Kind::Message, t, last_message, none);
        t += bot_latency(rng);
    }
    // The start step greets.
    last_message = next_message(message_counter);
    sink.push(rng, Kind::Message, t, last_message, none);

    let mut step = FlowGraph::START;
    while !sink.full() {
        let next = graph.next(step, rng);
        if graph.kind(step) == StepKind::End {
            // Starting over: the user writes again.
            t += user_think_time(rng);
            last_message = next_message(message_counter);
            sink.push(rng, Kind::Message, t, last_message, none);
        }
        t += match graph.kind(step) {
            StepKind::ApiCall => rng.random_range(80..=1_500),
            _ => rng.random_range(5..=300),
        };
        sink.push(rng, Kind::Transition, t, last_message, (step, next));
        step = next;
        match graph.kind(step) {
            StepKind::BotDialog => {
                t += bot_latency(rng);
                last_message = next_message(message_counter);
                sink.push(rng, Kind::Message, t, last_message, none);
                if rng.random_bool(FEEDBACK_AFTER_ANSWER_SHARE) {
                    t += rng.random_range(1_000..=10_000);
                    sink.push(rng, Kind::Feedback, t, NO_MESSAGE, none);
                }
            }
            StepKind::Input => {
                // The question is often part of the previous dialog step;
                // otherwise the input step asks it itself.
                if rng.random_bool(INPUT_ASKS_SHARE) {
                    t += bot_latency(rng);
                    let question = next_message(message_counter);
                    sink.push(rng, Kind::Message, t, question, none);
                }
                t += user_think_time(rng);
                last_message = next_message(message_counter);
                sink.push(rng, Kind::Message, t, last_message, none);
                if rng.random_bool(USER_ASKS_AGENT_SHARE) {
                    // "Can I talk to a human?"
                    t += rng.random_range(50..=500);
                    sink.push(rng, Kind::HandoverRequested, t, NO_MESSAGE, none);
                }
            }
            StepKind::ApiCall | StepKind::Condition => {}
            StepKind::Handover => {
                t += rng.random_range(200..=1_500);
                sink.push(rng, Kind::HandoverRequested, t, NO_MESSAGE, none);
                t += bot_latency(rng);
                last_message = next_message(message_counter);
                sink.push(rng, Kind::Message, t, last_message, none);
            }
            StepKind::End => {
                if rng.random_bool(FEEDBACK_AT_END_SHARE) {
                    t += rng.random_range(2_000..=30_000);
                    sink.push(rng, Kind::Feedback, t, NO_MESSAGE, none);
                }
            }
        }
    }
}
