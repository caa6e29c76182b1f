//! A decoder for the shape NDJSON events almost always have: one flat
//! object per line whose values are plain strings or `null`.
//!
//! `arrow-json` decodes any JSON: it first builds a tape of every token,
//! copying each string, then copies each string again into the output
//! array. On event lines, that was most of the time of an NDJSON job
//! (`ndjson`). [`decode_flat`] reads such lines in one pass and makes each
//! value a string view: of itself, up to 12 bytes, else into one buffer of
//! the longer values the query reads (not a copy of the chunk's text).
//!
//! Lines of one writer are alike: the same keys in the same order, with
//! the same punctuation around them. So a line is read as values and the
//! *separators* between them (`{"event_id":"`, `","timestamp":"`, …, up
//! to a value's opening quote or through a `null`), and each separator is
//! first compared, as one or two words, with the line before's at the same
//! place. When they are equal, the key, its column and the punctuation are
//! known without reading them; otherwise the separator is parsed token by
//! token and becomes the one the next line is compared with.
//!
//! It accepts a chunk only if every line is exactly a JSON object whose
//! keys are written without escapes and appear once, and whose values are
//! strings without escapes or control characters, or `null`, with JSON
//! whitespace anywhere between tokens, and the chunk is valid UTF-8. Any
//! other chunk (an escape, a number, a nested value, two objects on a
//! line, a syntax error) gives `None`, and the caller decodes it with
//! `arrow-json`, which gives the same batch or reports the error: this
//! decoder only ever takes the cases whose answer is plain.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringViewArray};
use arrow_buffer::{bit_util, BooleanBuffer, Buffer, MutableBuffer, NullBuffer};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::normalize::{view_at, INLINE_VIEW_LEN};
use super::scope::ScanScope;
use super::team_rows::{TeamRows, WITHOUT_TEAM, WITH_TEAM};
use super::value_set::ValueSet;
use crate::schema::{col, COLUMNS};
use crate::time::InstantReader;

/// The rows of `text`, whole lines of at most `max_rows` non-blank ones,
/// as a batch of `schema`'s columns (strings) in `Utf8View`; `None` when a
/// line is not a flat object of plain strings (see the module
/// documentation). With `ascii`, the caller saw every byte of `text` below
/// 0x80, and it is not checked to be UTF-8 again.
///
/// The lines are found as they are read: each object must end its line,
/// and `ends` gets the end (exclusive, newline included) of each non-blank
/// one; a line's span opens with the blank lines before it. Splitting the
/// text into lines first was a pass of its own over every byte.
#[inline]
pub(super) fn decode_flat(
    schema: &SchemaRef,
    text: &[u8],
    max_rows: usize,
    ascii: bool,
    filter: Option<&RowFilter>,
    ends: &mut Vec<usize>,
) -> Option<FlatRows> {
    let Some(team) = filter.and_then(|f| f.team.as_ref()) else {
        return decode_lines(schema, text, max_rows, ascii, filter, ends, None);
    };
    let mut bots = BotTally::new(team.rows.known_bots());
    loop {
        let rows = decode_lines(schema, text, max_rows, ascii, filter, ends, Some(&mut bots))?;
        if !bots.inconsistent() {
            bots.record(text, team.rows);
            return Some(rows);
        }
        // A bot's lines were left out before one of its lines named the
        // team: read the chunk again, knowing the bot (the second reading
        // leaves out none of its lines).
        bots.know_team_bots();
    }
}

/// [`decode_flat`]'s pass over the lines; with a team filter, `bots`
/// holds the chunk's bots (see [`RowFilter::leaves_out_of_team`]). Inlined in
/// both of its calls, so that the one without a team compiles to the loop
/// it was before teams were kept (1–1.5% faster on NDJSON conversations
/// than one copy for both).
#[inline(always)]
fn decode_lines(
    schema: &SchemaRef,
    text: &[u8],
    max_rows: usize,
    ascii: bool,
    filter: Option<&RowFilter>,
    ends: &mut Vec<usize>,
    mut bots: Option<&mut BotTally>,
) -> Option<FlatRows> {
    // Columns are bits of a word while a line is read (an event has 17).
    if text.len() > u32::MAX as usize || schema.fields().len() > 64 {
        return None;
    }
    let names: Vec<&[u8]> = schema
        .fields()
        .iter()
        .map(|f| f.name().as_bytes())
        .collect();
    ends.clear();
    // Rows the columns have room for. A filter keeps few lines of most
    // chunks (one bot's of two dozen): room for all of them was memory
    // zeroed for nothing (2% of the time of a filtered job), so it starts
    // small and doubles.
    let mut room = match filter {
        Some(_) => max_rows.min(FILTERED_ROOM),
        None => max_rows,
    };
    let mut columns: Vec<ColumnValues> = names.iter().map(|_| ColumnValues::new(room)).collect();
    // The values longer than a view holds, one after the other: the only
    // bytes the views need besides their own (the lines' keys, quotes and
    // the columns not asked for stay behind).
    let mut long: Vec<u8> = Vec::new();
    let mut separators = Separators::default();
    // With a filter: the rows kept (by index in `ends`), and the
    // timestamps of rows being left out, read to be sure they are valid.
    let mut kept: Vec<u32> = Vec::new();
    let mut ranges = vec![(0usize, 0usize); names.len()];
    let mut instants = InstantReader::default();
    // The row of the batch the line being read becomes, unless it is left
    // out (the batch's rows are the lines kept).
    let mut out = 0usize;
    let mut start = 0usize;
    // `text[..valid]` is known to be UTF-8. It is checked some lines at a
    // time, as they are read, while they are in the core's cache: checked
    // whole up front, a chunk (a few megabytes) was read from memory twice.
    let mut valid = if ascii { text.len() } else { 0 };
    // Blank lines to the text's end are no row.
    // Whether a line's span opened with blank lines, and whether reading
    // stopped at `max_rows` lines with more to read.
    let (mut spaced, mut stopped) = (false, false);
    while skip_space(text, start) < text.len() {
        let row = ends.len();
        if row == max_rows {
            stopped = true;
            break;
        }
        spaced |= text[start] != b'{';
        // The columns the line gives (bits), those with a value, and the
        // values' ranges: written once the line is read and kept.
        let (mut given, mut filled) = (0u64, 0u64);
        let end = separators.read_object(text, start, &names, |column, value| {
            let bit = 1u64 << column;
            if given & bit != 0 {
                return None; // a key given twice
            }
            given |= bit;
            if let Some(range) = value {
                filled |= bit;
                ranges[column] = range;
            }
            Some(())
        })?;
        if end > valid {
            let to = char_boundary(text, (end + UTF8_CHECKED_AT_ONCE).min(text.len()));
            simdutf8::basic::from_utf8(&text[valid..to]).ok()?;
            valid = to;
        }
        ends.push(end);
        start = end;
        if let Some(filter) = filter {
            let left_out = match bots.as_deref_mut() {
                Some(bots) => filter.leaves_out_of_team(text, &ranges, filled, &mut instants, bots),
                None => filter.leaves_out(text, &ranges, filled, &mut instants),
            };
            if left_out {
                continue;
            }
            kept.push(row as u32);
            if out == room {
                room = (room * 2).min(max_rows);
                columns.iter_mut().for_each(|values| values.grow(room));
            }
        }
        let mut bits = filled;
        while bits != 0 {
            let column = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let (from, to) = ranges[column];
            let values = &mut columns[column];
            values.views[out] = if to - from > INLINE_VIEW_LEN {
                let at = long.len();
                long.extend_from_slice(&text[from..to]);
                view_at(&long, at, long.len(), 0)
            } else {
                (to - from) as u128 | (word_at(text, from, to - from) << 32)
            };
            bit_util::set_bit(values.valid.as_slice_mut(), out);
            values.non_null += 1;
        }
        out += 1;
    }
    // The lines read end at `start`; the text after them is checked when
    // they are read.
    if long.len() > u32::MAX as usize
        || (valid < start && simdutf8::basic::from_utf8(&text[valid..start]).is_err())
    {
        return None;
    }
    let buffer = Buffer::from_vec(long);
    let arrays: Vec<ArrayRef> = columns
        .into_iter()
        .map(|mut values| {
            values.views.truncate(out);
            let nulls = (values.non_null < out)
                .then(|| NullBuffer::new(BooleanBuffer::new(values.valid.into(), 0, out)));
            // SAFETY: every non-null view is made from a range of `text`
            // that lies between two ASCII quotes of a text checked to be
            // valid UTF-8 (`valid` reached its end), so the range is valid UTF-8: inline when
            // it has at most 12 bytes (its bytes above the length zero),
            // else by `view_at` naming buffer 0, `long`, where the range
            // was copied, at the offset it was copied to (in bounds); null
            // views are 0. That is what `StringViewArray::try_new` would
            // check.
            Arc::new(unsafe {
                StringViewArray::new_unchecked(
                    values.views.into(),
                    vec![buffer.clone()].into(),
                    nulls,
                )
            }) as ArrayRef
        })
        .collect();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| Field::new(f.name(), DataType::Utf8View, true))
        .collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).ok()?;
    Some(FlatRows {
        batch,
        kept: filter.map(|_| kept),
        end: if stopped { start } else { text.len() },
        spaced,
    })
}

/// What [`decode_flat`] read of a chunk.
pub(super) struct FlatRows {
    pub batch: RecordBatch,
    /// With a filter, the lines the batch's rows are (by index in the
    /// chunk); the others were left out.
    pub kept: Option<Vec<u32>>,
    /// Where reading stopped: the end of the text, or, when `max_rows`
    /// lines were read and more follow, the end of the last line read
    /// (blank lines after it open the next line's span).
    pub end: usize,
    /// Whether a line's span opened with blank lines (else each line
    /// follows the one before).
    pub spaced: bool,
}

/// The rows a scan keeps ([`ScanScope`]), decided line by line: a line is
/// left out of the batch when its `bot_id` or `conversation_id` is not one
/// the scope wants (the conditions `ScanScope::retain` applies), or its
/// bot is not one of the team's the scope keeps (as far as the lines read
/// so far tell: [`RowFilter::leaves_out_of_team`]), and it is a valid event:
/// every required key with a string value and a timestamp that reads. A
/// line with a problem is kept whatever its values, so that it is reported
/// (or skipped and counted) exactly as without a filter.
pub(super) struct RowFilter<'a> {
    /// Per condition: the column's index in the schema and its values.
    conditions: Vec<(usize, ValueSet<'a>)>,
    /// The team the scope keeps, if any.
    team: Option<TeamFilter<'a>>,
    /// Bits of the required columns, by index in the schema.
    required: u64,
    timestamp: usize,
    bot: usize,
}

/// A [`RowFilter`]'s team ([`ScanScope::keeping_team`]).
struct TeamFilter<'a> {
    /// The index of `team_id` in the schema; `None` when the lines are not
    /// read for it (no line is then the team's).
    column: Option<usize>,
    value: &'a [u8],
    rows: &'a TeamRows,
}

impl<'a> RowFilter<'a> {
    /// The filter of `scope` over lines decoded into `schema`; `None` when
    /// it would keep every line (no condition it applies), or when the
    /// schema lacks a required column or has more than 64.
    pub(super) fn new(schema: &SchemaRef, scope: &'a ScanScope) -> Option<Self> {
        let index = |name: &str| schema.index_of(name).ok().filter(|&i| i < 64);
        let conditions: Vec<(usize, ValueSet<'a>)> = scope
            .conditions()
            .filter(|(column, _)| matches!(*column, col::BOT_ID | col::CONVERSATION_ID))
            .map(|(column, values)| Some((index(column)?, ValueSet::new(values))))
            .collect::<Option<_>>()?;
        let team = scope.team_rows().map(|rows| TeamFilter {
            column: index(col::TEAM_ID),
            value: rows.team().as_bytes(),
            rows,
        });
        if conditions.is_empty() && team.is_none() {
            return None;
        }
        let mut required = 0u64;
        for (name, _) in COLUMNS.iter().filter(|(_, required)| *required) {
            required |= 1 << index(name)?;
        }
        Some(Self {
            conditions,
            team,
            required,
            timestamp: index(col::TIMESTAMP)?,
            bot: index(col::BOT_ID)?,
        })
    }

    /// Whether the line just read, whose columns `filled` (bits) have the
    /// values `ranges` of `text`, is left out (a filter without a team).
    #[inline]
    fn leaves_out(
        &self,
        text: &[u8],
        ranges: &[(usize, usize)],
        filled: u64,
        instants: &mut InstantReader,
    ) -> bool {
        if filled & self.required != self.required {
            return false;
        }
        let wanted = self.conditions.iter().all(|(column, values)| {
            let (from, to) = ranges[*column];
            values.contains(&text[from..to])
        });
        if wanted {
            return false;
        }
        let (from, to) = ranges[self.timestamp];
        instants.is_instant(&text[from..to])
    }

    /// [`RowFilter::leaves_out`] for a filter with a team, `bots` holding
    /// the chunk's bots: a line inside the other conditions is kept when
    /// its bot is one of the team's (known before the chunk, or with a
    /// line naming the team in it so far), and its bot is noted as seen
    /// with the team or left out.
    #[inline]
    fn leaves_out_of_team(
        &self,
        text: &[u8],
        ranges: &[(usize, usize)],
        filled: u64,
        instants: &mut InstantReader,
        bots: &mut BotTally,
    ) -> bool {
        let Some(team) = &self.team else {
            return self.leaves_out(text, ranges, filled, instants);
        };
        if filled & self.required != self.required {
            return false;
        }
        let wanted = self.conditions.iter().all(|(column, values)| {
            let (from, to) = ranges[*column];
            values.contains(&text[from..to])
        });
        let (from, to) = ranges[self.timestamp];
        if !wanted {
            return instants.is_instant(&text[from..to]);
        }
        let in_team = team.column.is_some_and(|column| {
            let (from, to) = ranges[column];
            filled & (1 << column) != 0 && text[from..to] == *team.value
        });
        let (bot_from, bot_to) = ranges[self.bot];
        let bot = bots.slot_of(text, bot_from, bot_to);
        if in_team {
            bots.note(bot, WITH_TEAM);
            return false;
        }
        if bots.is_team_bot(bot) || !instants.is_instant(&text[from..to]) {
            return false;
        }
        bots.note(bot, WITHOUT_TEAM);
        true
    }
}

/// The bots of a chunk's lines, each with how its lines were seen
/// ([`TeamRows`]), in a table of their own keyed by each value's first 16
/// bytes and length, and recorded in the scope's [`TeamRows`] at the
/// chunk's end: a lock, or a string made, per line would cost more than
/// reading the line. It starts with the team's bots known before the
/// chunk.
struct BotTally {
    slots: Vec<BotSlot>,
    used: usize,
    /// The team's bots known when the chunk started.
    known: Arc<Vec<String>>,
}

/// A bot of a [`BotTally`]: its value's first 16 bytes (as a word), its
/// length, where its bytes are (`at`: an offset into the chunk's text, or
/// with `KNOWN_BEFORE`, an index into the bots known) and how it was seen.
#[derive(Clone, Copy, Default)]
struct BotSlot {
    word: u128,
    at: u32,
    len: u32,
    how: u8,
    occupied: bool,
}

/// A [`BotSlot`] flag besides [`WITH_TEAM`] and [`WITHOUT_TEAM`]: a bot of
/// the team whose lines are all kept (known before the chunk, or found in
/// it on a first reading).
const TEAM_BOT: u8 = 4;
/// A [`BotSlot`] flag: the bot is one of [`BotTally::known`], at `at`.
const KNOWN_BEFORE: u8 = 8;

impl BotTally {
    fn new(known: Arc<Vec<String>>) -> Self {
        let mut tally = Self {
            slots: vec![BotSlot::default(); Self::capacity_for(known.len())],
            used: 0,
            known,
        };
        let known = Arc::clone(&tally.known);
        for (i, bot) in known.iter().enumerate() {
            let bytes = bot.as_bytes();
            let word = word_at(bytes, 0, bytes.len().min(16));
            // The bots known are distinct: each goes to an empty slot.
            let slot = tally.slot_for(word, bytes.len(), |_, _| false);
            tally.slots[slot] = BotSlot {
                word,
                at: i as u32,
                len: bytes.len() as u32,
                how: TEAM_BOT | KNOWN_BEFORE,
                occupied: true,
            };
            tally.used += 1;
        }
        tally
    }

    /// Slots for `n` bots at most three quarters full (a power of two).
    fn capacity_for(n: usize) -> usize {
        (n * 4 / 3 + 1).next_power_of_two().max(64)
    }

    /// The bytes of the bot in `slot`, a value of `text` or a bot known.
    fn bytes<'a>(&'a self, slot: &BotSlot, text: &'a [u8]) -> &'a [u8] {
        if slot.how & KNOWN_BEFORE != 0 {
            self.known[slot.at as usize].as_bytes()
        } else {
            &text[slot.at as usize..][..slot.len as usize]
        }
    }

    /// The slot of the value whose first 16 bytes are `word` and whose
    /// length is `len` (a longer value's slot also passes `same`, which
    /// compares all of its bytes), or the empty slot to put it in.
    fn slot_for(&self, word: u128, len: usize, same: impl Fn(&BotSlot, &Self) -> bool) -> usize {
        let mask = self.slots.len() - 1;
        let mixed = (word as u64) ^ ((word >> 64) as u64).rotate_left(29) ^ len as u64;
        let mut i = (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize & mask;
        loop {
            let slot = &self.slots[i];
            if !slot.occupied
                || (slot.len as usize == len
                    && slot.word == word
                    && (len <= 16 || same(slot, self)))
            {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    /// The slot of the bot `text[from..to]`, added when new (the text is
    /// at most `u32::MAX` bytes long).
    #[inline]
    fn slot_of(&mut self, text: &[u8], from: usize, to: usize) -> usize {
        let bytes = &text[from..to];
        let word = word_at(bytes, 0, bytes.len().min(16));
        let i = self.slot_for(word, bytes.len(), |s, tally| tally.bytes(s, text) == bytes);
        if self.slots[i].occupied {
            return i;
        }
        if (self.used + 1) * 4 > self.slots.len() * 3 {
            self.grow();
            return self.slot_of(text, from, to);
        }
        self.slots[i] = BotSlot {
            word,
            at: from as u32,
            len: bytes.len() as u32,
            how: 0,
            occupied: true,
        };
        self.used += 1;
        i
    }

    /// Twice the slots, every bot placed again (they are distinct: each
    /// goes to an empty slot).
    fn grow(&mut self) {
        let doubled = vec![BotSlot::default(); self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        for slot in old.into_iter().filter(|s| s.occupied) {
            let i = self.slot_for(slot.word, slot.len as usize, |_, _| false);
            self.slots[i] = slot;
        }
    }

    #[inline]
    fn note(&mut self, slot: usize, how: u8) {
        self.slots[slot].how |= how;
    }

    /// Whether the bot in `slot` is one of the team's: every line of it is
    /// kept.
    #[inline]
    fn is_team_bot(&self, slot: usize) -> bool {
        self.slots[slot].how & (TEAM_BOT | WITH_TEAM) != 0
    }

    /// Whether a bot had lines left out and a line naming the team.
    fn inconsistent(&self) -> bool {
        self.slots
            .iter()
            .any(|s| s.how & (WITH_TEAM | WITHOUT_TEAM) == WITH_TEAM | WITHOUT_TEAM)
    }

    /// Makes every bot with a line naming the team one of the team's, and
    /// forgets which were left out, for a second reading of the chunk.
    fn know_team_bots(&mut self) {
        for slot in &mut self.slots {
            if slot.how & WITH_TEAM != 0 {
                slot.how |= TEAM_BOT;
            }
            slot.how &= !WITHOUT_TEAM;
        }
    }

    /// Records the bots seen with the team and left out in `rows`. `text`
    /// is the chunk's, checked to be UTF-8: every value noted lies between
    /// two ASCII quotes of it.
    fn record(&self, text: &[u8], rows: &TeamRows) {
        rows.record(self.slots.iter().filter(|s| s.occupied).filter_map(|s| {
            let how = s.how & (WITH_TEAM | WITHOUT_TEAM);
            let bot = std::str::from_utf8(self.bytes(s, text)).ok()?;
            (how != 0).then_some((bot, how))
        }));
    }
}

/// `at`, or the start of the character `text[at]` continues (at most three
/// bytes back): where a piece of UTF-8 text may end. A check of text cut
/// inside a character would fail.
fn char_boundary(text: &[u8], mut at: usize) -> usize {
    for _ in 0..3 {
        match text.get(at) {
            Some(&b) if b & 0xC0 == 0x80 => at -= 1,
            _ => break,
        }
    }
    at
}

/// Bytes checked to be UTF-8 at a time (some 100 event lines), well
/// within a core's cache when they are read next.
const UTF8_CHECKED_AT_ONCE: usize = 32 * 1024;

/// One column's values as they are read, row by row.
struct ColumnValues {
    /// One view per row, 0 (null) until the row gives a value.
    views: Vec<u128>,
    /// One bit per row: whether it gave a value (not `null`, not absent).
    valid: MutableBuffer,
    non_null: usize,
}

impl ColumnValues {
    fn new(rows: usize) -> Self {
        Self {
            views: vec![0; rows],
            valid: MutableBuffer::from_len_zeroed(bit_util::ceil(rows, 8)),
            non_null: 0,
        }
    }

    /// Makes room for `rows` rows, the new ones null.
    fn grow(&mut self, rows: usize) {
        self.views.resize(rows, 0);
        self.valid.resize(bit_util::ceil(rows, 8), 0);
    }
}

/// Rows a filtered chunk's columns have room for at first.
const FILTERED_ROOM: usize = 512;

/// The `len` (at most 16) bytes of `text` from `from` as a little-endian
/// word, the bytes above them zero: read as one 16-byte word and masked
/// where `text` has the bytes, so that lengths varying from row to row
/// cost no branch and no call to `memcpy`.
#[inline(always)]
fn word_at(text: &[u8], from: usize, len: usize) -> u128 {
    debug_assert!(len <= 16);
    let word = match text.get(from..from + 16) {
        Some(word) => u128::from_le_bytes(word.try_into().unwrap_or([0; 16])),
        None => {
            // Near the end of the text: copy what there is.
            let mut word = [0u8; 16];
            let len = len.min(text.len().saturating_sub(from));
            word[..len].copy_from_slice(&text[from..from + len]);
            u128::from_le_bytes(word)
        }
    };
    word & low_bytes(len)
}

/// A mask of the low `len` bytes of a word (all of them from 16 on), from
/// a table: a shift of a 128-bit word by a variable amount is a dozen
/// instructions.
#[inline(always)]
fn low_bytes(len: usize) -> u128 {
    static MASKS: [u128; 17] = {
        let mut masks = [0u128; 17];
        let mut len = 1;
        while len < 17 {
            masks[len] = u128::MAX >> (8 * (16 - len));
            len += 1;
        }
        masks
    };
    MASKS[len.min(16)]
}

/// The bytes between two values of a line (or before its first), as one
/// line read them: from just after a value (its closing quote, or its
/// `null`) or from the line's start, through the next key and its colon,
/// to the next value's opening quote or through its `null`.
#[derive(Clone, Copy)]
struct Separator<'t> {
    bytes: &'t [u8],
    /// Its first 16 bytes as a word (those it has; the rest zero).
    head: u128,
    /// Its last 16 bytes as a word, when it has more than 16.
    tail: u128,
    /// The column of the key it holds, if the query reads it.
    column: Option<usize>,
    /// Whether it ends with the value `null` (else with a quote).
    null: bool,
    /// Whether it opens a line (else it follows a value).
    first: bool,
}

impl Separator<'_> {
    /// Whether `text[pos..]` starts with this separator.
    #[inline(always)]
    fn is_at(&self, text: &[u8], pos: usize) -> bool {
        let n = self.bytes.len();
        if pos + n > text.len() {
            return false;
        }
        match n {
            0..=16 => word_at(text, pos, n) == self.head,
            17..=32 => {
                word_at(text, pos, 16) == self.head && word_at(text, pos + n - 16, 16) == self.tail
            }
            _ => &text[pos..pos + n] == self.bytes,
        }
    }
}

/// The distinct separators read so far, each with the ones that came
/// after it last: lines of one writer follow a few paths through them (a
/// message's keys, a transition's, a line without a team), so the
/// separator after a value is nearly always one of the two that followed
/// the value's separator before, and one comparison finds it.
#[derive(Default)]
struct Separators<'t> {
    known: Vec<KnownSeparator<'t>>,
    /// The separator that opened the line before, by index in `known`.
    first: Option<u16>,
}

struct KnownSeparator<'t> {
    separator: Separator<'t>,
    /// The separators read after this one's value, the last first.
    next: [Option<u16>; 2],
}

/// Distinct separators remembered: enough for the keys of every kind of
/// event line; others are parsed every time.
const KNOWN_SEPARATORS: usize = 64;

impl<'t> Separators<'t> {
    /// Reads the line from `start` (after blank lines, if any) as one
    /// object, calling `on_value(column, value)` for each key whose column
    /// the query reads (`value`: the range of a string's content, or
    /// `None` for `null`); gives the line's end (after its newline), or
    /// `None` if the line is anything else or `on_value` says `None`.
    #[inline(always)]
    fn read_object(
        &mut self,
        text: &'t [u8],
        start: usize,
        names: &[&[u8]],
        mut on_value: impl FnMut(usize, Option<(usize, usize)>) -> Option<()>,
    ) -> Option<usize> {
        // Positions are the text's. No token of an object is a newline,
        // and no string holds one, so a look never passes the line's end.
        let mut pos = start;
        // The separator read last in this line (`None` at its start, or
        // after one not remembered).
        let mut before: Option<u16> = None;
        let mut first = true;
        loop {
            // At the line's start or just after a value.
            if !first && text.get(pos) == Some(&b'}') {
                return line_end(text, pos + 1);
            }
            let predicted = match before {
                Some(b) => self.known[usize::from(b)].next[0],
                None if first => self.first,
                None => None,
            };
            let separator = match predicted {
                Some(p) if self.known[usize::from(p)].separator.is_at(text, pos) => {
                    before = Some(p);
                    self.known[usize::from(p)].separator
                }
                _ => match self.find(before, first, text, pos, names)? {
                    Found::Known(p) => {
                        before = Some(p);
                        self.known[usize::from(p)].separator
                    }
                    Found::Unknown(separator) => {
                        // Not remembered: read as it is.
                        before = None;
                        separator
                    }
                    Found::End(end) => return Some(end),
                },
            };
            pos += separator.bytes.len();
            first = false;
            let value = self.value(text, &mut pos, separator.null)?;
            if let Some(column) = separator.column {
                on_value(column, value)?;
            }
        }
    }

    /// The value at `pos` (after its separator): `None` for `null`, else
    /// the string's content; `pos` moves past it.
    #[inline(always)]
    fn value(&self, line: &[u8], pos: &mut usize, null: bool) -> Option<Option<(usize, usize)>> {
        if null {
            return Some(None);
        }
        let to = string_end(line, *pos)?;
        let value = (*pos, to);
        *pos = to + 1;
        Some(Some(value))
    }

    /// The separator at `pos` after the one `before` (or opening the line,
    /// when `first`), when it is not the one that came after it last: one
    /// known, or else parsed (see [`read_separator`]) and remembered. It
    /// becomes the first to be tried after `before` next time.
    #[inline(never)]
    fn find(
        &mut self,
        before: Option<u16>,
        first: bool,
        text: &'t [u8],
        pos: usize,
        names: &[&[u8]],
    ) -> Option<Found<'t>> {
        // A separator read at a line's start is only ever tried there, and
        // one read after a value only after a value: the same bytes parse
        // the same way in the same place.
        let second = before.and_then(|b| self.known[usize::from(b)].next[1]);
        let found = match second {
            Some(i) if self.known[usize::from(i)].separator.is_at(text, pos) => {
                Some(usize::from(i))
            }
            _ => self
                .known
                .iter()
                .position(|k| k.separator.first == first && k.separator.is_at(text, pos)),
        };
        let index = match found {
            Some(i) => i as u16,
            None => {
                let separator = match read_separator(text, pos, first, names)? {
                    Parsed::Separator(separator) => separator,
                    Parsed::ObjectEnd(end) => return Some(Found::End(end)),
                };
                if self.known.len() == KNOWN_SEPARATORS {
                    return Some(Found::Unknown(separator));
                }
                self.known.push(KnownSeparator {
                    separator,
                    next: [None; 2],
                });
                (self.known.len() - 1) as u16
            }
        };
        match before {
            Some(b) => {
                let next = &mut self.known[usize::from(b)].next;
                if next[0] != Some(index) {
                    *next = [Some(index), next[0]];
                }
            }
            None if first => self.first = Some(index),
            None => {}
        }
        Some(Found::Known(index))
    }
}

/// What [`Separators::find`] found at a place.
enum Found<'t> {
    /// A separator remembered, by index.
    Known(u16),
    /// A separator parsed but not remembered (too many distinct ones).
    Unknown(Separator<'t>),
    /// The object's end, and its line's (after the newline).
    End(usize),
}

/// What [`read_separator`] parsed.
enum Parsed<'t> {
    Separator(Separator<'t>),
    /// The object's end, and its line's (after the newline).
    ObjectEnd(usize),
}

/// Parses, token by token, the separator at `pos` (the line's start, or
/// the blank lines before it, when `first`; else just after a value), or
/// the object's end there instead (after whitespace, its `}` and
/// whitespace to the line's end); `None` if the bytes are neither.
fn read_separator<'t>(
    text: &'t [u8],
    pos: usize,
    first: bool,
    names: &[&[u8]],
) -> Option<Parsed<'t>> {
    let (at, b) = match first {
        true => {
            let at = skip_space(text, pos);
            (at, *text.get(at)?)
        }
        false => next_token(text, pos)?,
    };
    let key_at = match (first, b) {
        (true, b'{') | (false, b',') => {
            let (key_at, b) = next_token(text, at + 1)?;
            if first && b == b'}' {
                // An empty object.
                return line_end(text, key_at + 1).map(Parsed::ObjectEnd);
            }
            key_at
        }
        (false, b'}') => return line_end(text, at + 1).map(Parsed::ObjectEnd),
        _ => return None,
    };
    let (key_from, key_to) = read_string(text, key_at)?;
    let (colon, b) = next_token(text, key_to + 1)?;
    if b != b':' {
        return None;
    }
    let (value_at, b) = next_token(text, colon + 1)?;
    let (null, through) = match b {
        b'"' => (false, value_at + 1),
        b'n' if text.get(value_at..value_at + 4) == Some(b"null") => (true, value_at + 4),
        _ => return None,
    };
    let bytes = &text[pos..through];
    let key = &text[key_from..key_to];
    Some(Parsed::Separator(Separator {
        bytes,
        head: word_at(bytes, 0, bytes.len().min(16)),
        tail: word_at(bytes, bytes.len().saturating_sub(16), bytes.len().min(16)),
        column: names.iter().position(|n| *n == key),
        null,
        first,
    }))
}

/// The end (its closing quote) of the string whose content starts at
/// `from`. `None` if it holds an escape or a control character, or does
/// not close within `line`.
// Inlined into `Separators::read_object`, which calls it for every value.
#[inline(always)]
fn string_end(line: &[u8], from: usize) -> Option<usize> {
    let rest = line.get(from..)?;
    // Event strings are short: one pass over their first bytes, looking
    // for a byte that ends the plain part, beats a search for the quote
    // and a second pass for control characters; a longer string is
    // searched on.
    let head = &rest[..rest.len().min(SHORT_STRING)];
    let len = match first_string_stop(head) {
        Some(len) => len,
        None => {
            let tail = &rest[head.len()..];
            let len = head.len() + memchr::memchr2(b'"', b'\\', tail)?;
            if rest[head.len()..len].iter().any(|&b| b < 0x20) {
                return None;
            }
            len
        }
    };
    (rest[len] == b'"').then_some(from + len)
}

/// The content range of the string whose opening quote is at `pos`: up to
/// its closing quote, which is at the range's end. `None` if it holds an
/// escape or a control character, or does not close.
fn read_string(line: &[u8], pos: usize) -> Option<(usize, usize)> {
    if *line.get(pos)? != b'"' {
        return None;
    }
    Some((pos + 1, string_end(line, pos + 1)?))
}

/// Bytes of a string looked at before searching on.
const SHORT_STRING: usize = 32;

/// The position of the first byte of `bytes` in [`STRING_STOP`]: sixteen
/// bytes at a time where the processor has SSE2 (every x86-64 one), then
/// eight at a time as one word, then one by one.
#[inline]
fn first_string_stop(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    #[cfg(target_arch = "x86_64")]
    while let Some(block) = bytes.get(at..at + 16) {
        if let Some(i) = stop_in_block(block) {
            return Some(at + i);
        }
        at += 16;
    }
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // High bit of each byte below `n` (or, in the bytes after the first
    // such byte, possibly of others: a borrow; so only the lowest flagged
    // byte is sure, and only it is used).
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let stops = below(word, 0x20)
            | below(word ^ (ONES * u64::from(b'"')), 1)
            | below(word ^ (ONES * u64::from(b'\\')), 1);
        if stops != 0 {
            return Some(at + stops.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    bytes[at..]
        .iter()
        .position(|&b| STRING_STOP[usize::from(b)])
        .map(|i| at + i)
}

/// The position of the first byte of `block` (sixteen bytes) in
/// [`STRING_STOP`], by one comparison of each kind over the whole block.
#[cfg(target_arch = "x86_64")]
#[inline]
fn stop_in_block(block: &[u8]) -> Option<usize> {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    debug_assert_eq!(block.len(), 16);
    if block.len() < 16 {
        return None;
    }
    // SAFETY: `block` holds at least 16 bytes (checked above), which is
    // what the unaligned 128-bit load reads; the other intrinsics only
    // compute on registers, with SSE2, which every x86-64 processor has.
    let stops = unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // A byte is a control character when the unsigned maximum of it
        // and 0x1f is 0x1f.
        let low = _mm_set1_epi8(0x1f);
        let control = _mm_cmpeq_epi8(_mm_max_epu8(v, low), low);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control))
    };
    (stops != 0).then(|| stops.trailing_zeros() as usize)
}

/// The bytes that end the plain part of a JSON string: its closing quote,
/// a backslash (an escape) and the control characters (not allowed).
static STRING_STOP: [bool; 256] = {
    let mut stop = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        stop[b] = true;
        b += 1;
    }
    stop[b'"' as usize] = true;
    stop[b'\\' as usize] = true;
    stop
};

/// The first byte from `pos` on that is not JSON whitespace other than a
/// newline, with its position: on a compact line, the byte at `pos`, read
/// once. Within an object, a newline is no space but the line's end.
#[inline(always)]
fn next_token(line: &[u8], pos: usize) -> Option<(usize, u8)> {
    match line.get(pos) {
        Some(&b) if b > b' ' => Some((pos, b)),
        _ => {
            let pos = skip_inline_space(line, pos);
            Some((pos, *line.get(pos)?))
        }
    }
}

/// The end of the line (after its newline) when only JSON whitespace
/// follows `pos` on it; `None` if anything else does, or no newline.
#[inline(always)]
fn line_end(line: &[u8], pos: usize) -> Option<usize> {
    let at = match line.get(pos) {
        Some(b'\n') => pos,
        _ => skip_inline_space(line, pos),
    };
    (line.get(at) == Some(&b'\n')).then_some(at + 1)
}

/// The first position from `pos` that is not a space, tab or carriage
/// return (JSON whitespace on a line).
fn skip_inline_space(line: &[u8], mut pos: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\r') = line.get(pos) {
        pos += 1;
    }
    pos
}

/// The first position from `pos` that is not JSON whitespace. Every byte
/// above the space is not whitespace: one comparison for what a token
/// nearly always starts with.
fn skip_space(line: &[u8], mut pos: usize) -> usize {
    while let Some(&b) = line.get(pos) {
        if b > b' ' || !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            break;
        }
        pos += 1;
    }
    pos
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::Array;
    use proptest::prelude::*;

    use super::*;

    fn decode_schema_of(names: &[&str]) -> SchemaRef {
        Arc::new(Schema::new(
            names
                .iter()
                .map(|n| Field::new(*n, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ))
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(
            ["event_id", "bot_id", "language"]
                .map(|n| Field::new(n, DataType::Utf8, true))
                .to_vec(),
        ))
    }

    /// Lines ending with `\n`, and the end of each.
    /// [`decode_flat`] of the lines ending at `ends`, which must find
    /// the ends of those that are not blank.
    fn decode(
        schema: &SchemaRef,
        text: &[u8],
        ends: &[usize],
        ascii: bool,
        filter: Option<&RowFilter>,
    ) -> Option<FlatRows> {
        let mut found = Vec::new();
        let rows = decode_flat(schema, text, ends.len(), ascii, filter, &mut found)?;
        let mut starts = std::iter::once(0).chain(ends.iter().copied());
        let not_blank: Vec<usize> = ends
            .iter()
            .copied()
            .filter(|&end| {
                let start = starts.next().unwrap_or(0);
                !text[start..end].iter().all(u8::is_ascii_whitespace)
            })
            .collect();
        assert_eq!(found, not_blank, "line ends");
        Some(rows)
    }

    fn chunk(lines: &[&str]) -> (Vec<u8>, Vec<usize>) {
        let mut text = Vec::new();
        let mut ends = Vec::new();
        for line in lines {
            text.extend_from_slice(line.as_bytes());
            text.push(b'\n');
            ends.push(text.len());
        }
        (text, ends)
    }

    /// What `arrow-json` makes of `text`, as rows of optional strings;
    /// `None` if it refuses it or its rows are not `rows`.
    fn reference(text: &[u8], rows: usize) -> Option<Vec<Vec<Option<String>>>> {
        let mut decoder = arrow_json::ReaderBuilder::new(schema())
            .build_decoder()
            .ok()?;
        let mut rest = text;
        while !rest.is_empty() {
            let used = decoder.decode(rest).ok()?;
            if used == 0 {
                return None;
            }
            rest = &rest[used..];
        }
        match decoder.flush().ok()? {
            Some(batch) => (batch.num_rows() == rows).then(|| as_rows(&batch)),
            None => (rows == 0).then(Vec::new),
        }
    }

    fn as_rows(batch: &RecordBatch) -> Vec<Vec<Option<String>>> {
        (0..batch.num_rows())
            .map(|r| {
                batch
                    .columns()
                    .iter()
                    .map(|c| {
                        let c = arrow_cast::cast(c, &DataType::Utf8).unwrap();
                        let c = c.as_string::<i32>();
                        c.is_valid(r).then(|| c.value(r).to_owned())
                    })
                    .collect()
            })
            .collect()
    }

    fn flat(lines: &[&str]) -> Option<Vec<Vec<Option<String>>>> {
        let (text, ends) = chunk(lines);
        decode(&schema(), &text, &ends, false, None).map(|r| as_rows(&r.batch))
    }

    #[test]
    fn text_in_any_script_is_taken_wherever_its_checks_cut_it() {
        // Lines of two- and three-byte characters, far more than one check
        // of UTF-8 covers: wherever a check's end falls, inside a
        // character or not, the chunk is the flat decoder's.
        for pad in 0..3 {
            let value = format!("{}{}", "x".repeat(pad), "é✓".repeat(40));
            let line = format!(r#"{{"event_id":"{value}","bot_id":"b"}}"#);
            let lines = vec![line.as_str(); 2 * UTF8_CHECKED_AT_ONCE / line.len()];
            let rows = flat(&lines).expect("taken by the flat decoder");
            assert_eq!(rows.len(), lines.len());
            assert!(rows.iter().all(|r| r[0].as_deref() == Some(value.as_str())));
        }
        assert_eq!(char_boundary("aé✓".as_bytes(), 2), 1);
        assert_eq!(char_boundary("aé✓".as_bytes(), 4), 3);
        assert_eq!(char_boundary("aé✓".as_bytes(), 5), 3);
        assert_eq!(char_boundary("aé✓".as_bytes(), 6), 6);
    }

    #[test]
    fn reading_stops_after_the_rows_asked_for() {
        let (text, ends) = chunk(&[
            r#"{"event_id":"e1"}"#,
            "",
            r#"{"event_id":"e2"}"#,
            r#"{"event_id":"e3"}"#,
        ]);
        let mut found = Vec::new();
        let rows = decode_flat(&schema(), &text, 2, true, None, &mut found).unwrap();
        assert_eq!(rows.batch.num_rows(), 2);
        assert_eq!(rows.end, ends[2]);
        assert!(
            rows.spaced,
            "the second line's span opens with a blank line"
        );
        let rest = decode_flat(&schema(), &text[rows.end..], 2, true, None, &mut found).unwrap();
        assert_eq!(rest.batch.num_rows(), 1);
        assert_eq!(rest.end, text.len() - rows.end);
        assert!(!rest.spaced);
    }

    #[test]
    fn plain_objects_decode_as_arrow_json_decodes_them() {
        let lines = [
            r#"{"event_id":"e1","bot_id":"b","language":"fr"}"#,
            r#"  { "bot_id" : "b2" , "event_id":"a longer id than twelve bytes", "other": "x" }  "#,
            r#"{"language":null,"event_id":"é ünïcode ✓","bot_id":""}"#,
            "{}",
            "\n\n  {\"event_id\":\"after blank lines\"}\r",
        ];
        let (text, ends) = chunk(&lines);
        let got = flat(&lines).expect("taken by the flat decoder");
        assert_eq!(Some(got.clone()), reference(&text, ends.len()));
        assert_eq!(got[1][0].as_deref(), Some("a longer id than twelve bytes"));
        let long = r#"{"event_id":"a string longer than thirty-two bytes, and plain"}"#;
        assert_eq!(
            flat(&[long]).unwrap()[0][0].as_deref(),
            Some("a string longer than thirty-two bytes, and plain")
        );
        assert_eq!(got[2][2], None);
        assert_eq!(got[3], vec![None, None, None]);
    }

    /// The word-at-a-time search finds what a byte-by-byte one finds,
    /// whatever the bytes around the stop (borrows across bytes included).
    #[test]
    fn string_stops_are_found_as_one_by_one() {
        let naive = |b: &[u8]| b.iter().position(|&b| STRING_STOP[usize::from(b)]);
        let fillers = [
            b'a', 0x00, 0x1f, 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xff, 0x01,
        ];
        for len in 0..40 {
            for stop in 0..=len {
                for &filler in &fillers {
                    for &at_stop in &[b'"', b'\\', 0x00, 0x0a, 0x1f, b'a'] {
                        // Before the stop, bytes next to the ones searched
                        // for; after it, anything.
                        let near = [0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xff, b'a'];
                        let mut bytes: Vec<u8> = (0..len).map(|i| near[i % near.len()]).collect();
                        for (i, b) in bytes.iter_mut().enumerate() {
                            if i > stop {
                                *b = filler;
                            }
                        }
                        if stop < len {
                            bytes[stop] = at_stop;
                        }
                        assert_eq!(first_string_stop(&bytes), naive(&bytes), "{bytes:?}");
                    }
                }
            }
        }
    }

    /// The batch's buffers hold the values longer than a view, and nothing
    /// else of the text (keys, quotes, columns not asked for).
    #[test]
    fn only_long_values_are_copied() {
        let lines = [
            r#"{"event_id":"short","bot_id":"a bot id of 19 bytes","other":"not asked for, and long"}"#,
            r#"{"event_id":"an event id of 21 b","language":"fr"}"#,
        ];
        let (text, ends) = chunk(&lines);
        let batch = decode(&schema(), &text, &ends, false, None).unwrap().batch;
        let buffered: usize = batch
            .columns()
            .iter()
            .map(|c| {
                c.as_string_view()
                    .data_buffers()
                    .iter()
                    .map(|b| b.len())
                    .max()
                    .unwrap_or(0)
            })
            .max()
            .unwrap();
        assert_eq!(
            buffered,
            "a bot id of 19 bytes".len() + "an event id of 21 b".len()
        );
    }

    /// Keys are matched to columns by the line before's keys where they
    /// agree: lines in another order, with other keys, or a key given twice
    /// after a line that gave it once, decode as arrow-json decodes them.
    #[test]
    fn keys_in_the_order_of_the_line_before_or_not() {
        let lines = [
            r#"{"event_id":"e1","bot_id":"b1","other":"x","language":"fr"}"#,
            r#"{"event_id":"e2","bot_id":"b2","other":"y","language":"de"}"#,
            r#"{"language":"it","event_id":"e3","bot_id":"b3"}"#,
            r#"{"event_id":"e4","other":"z","bot_id":"b4"}"#,
            r#"{"event_id":"e5","bot_id":"b5","other":"x","language":"fr"}"#,
        ];
        let (text, ends) = chunk(&lines);
        let got = flat(&lines).expect("taken by the flat decoder");
        assert_eq!(Some(got.clone()), reference(&text, ends.len()));
        assert_eq!(got[2][2].as_deref(), Some("it"));
        assert_eq!(got[3][2], None);
        let twice = [
            r#"{"event_id":"e1","bot_id":"b1"}"#,
            r#"{"event_id":"e2","event_id":"e3"}"#,
        ];
        assert_eq!(flat(&twice), None);
    }

    /// Lines of several kinds, as a writer mixes them (keys missing,
    /// added, `null`, spaced): every separator is found after whichever
    /// value it follows, as arrow-json reads the lines.
    #[test]
    fn separators_are_found_after_any_value_they_followed_before() {
        let kinds = [
            r#"{"event_id":"e1","bot_id":"a bot id longer than a view","language":"fr"}"#,
            r#"{"event_id":"e2","language":"de"}"#,
            r#"{"event_id":"e3","bot_id":"b","other":"x","language":null}"#,
            r#"{"event_id":"e4","bot_id":"b","other":"x","language":"it","more":"y"}"#,
            r#"{"bot_id":"b5","event_id":"e5"}"#,
            r#"{ "event_id" : "e6" , "bot_id":"b6"}"#,
            r#"{"event_id":"e7","bot_id":"b7" }"#,
            "{}",
            r#"{"language":"pt"}"#,
        ];
        // Every kind after every other, twice.
        let mut lines = Vec::new();
        for a in kinds {
            for b in kinds {
                lines.extend([a, b, a, b]);
            }
        }
        let (text, ends) = chunk(&lines);
        let got = flat(&lines).expect("taken by the flat decoder");
        assert_eq!(Some(got), reference(&text, ends.len()));
    }

    /// Past the separators remembered, the others are parsed every time.
    #[test]
    fn more_distinct_keys_than_remembered_decode_all_the_same() {
        let lines: Vec<String> = (0..3 * KNOWN_SEPARATORS)
            .map(|i| format!(r#"{{"key {i}":"v","event_id":"e{i}","key {i} again":null}}"#))
            .collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (text, ends) = chunk(&lines);
        let got = flat(&lines).expect("taken by the flat decoder");
        assert_eq!(got[150][0].as_deref(), Some("e150"));
        assert_eq!(Some(got), reference(&text, ends.len()));
    }

    /// A line's opening separator is never taken after a value, nor one
    /// after a value for a line's opening, though their bytes were seen.
    #[test]
    fn a_separator_is_only_taken_where_it_was_read() {
        for second in [
            r#"{"event_id":"a"{"event_id":"b"}"#,
            r#","bot_id":"b"}"#,
            r#"{"event_id":"a","bot_id":"b","event_id":"c"}"#,
        ] {
            let lines = [r#"{"event_id":"a","bot_id":"b"}"#, second];
            assert_eq!(flat(&lines), None, "{second}");
        }
    }

    /// A scope's filter leaves out the valid events outside it, and keeps
    /// those inside it and every line with a problem, whatever its values;
    /// a line left out leaves nothing behind in the next row.
    #[test]
    fn a_filter_leaves_out_only_valid_events_outside_the_scope() {
        let schema = required_schema_with(&["language"]);
        let line = |id: &str, ts: &str, bot: &str, conversation: &str, extra: &str| {
            format!(
                r#"{{"event_id":"{id}","timestamp":"{ts}","bot_id":"{bot}","conversation_id":"{conversation}","event_type":"message"{extra}}}"#
            )
        };
        let t = "2024-01-01T00:00:00Z";
        let lines = [
            line("e1", t, "bot-wanted-with-a-long-id", "c1", r#","language":"fr""#),
            line("e2", t, "other-bot-with-a-long-id", "c1", r#","language":"a long language value""#),
            line("e3", t, "bot-wanted-with-a-long-id", "c2", ""),
            line("e4", t, "bot-wanted-with-a-long-id", "c9", ""),
            line("e5", "not a time", "other", "c1", ""),
            r#"{"event_id":"e6","timestamp":"2024-01-01T00:00:00Z","bot_id":"other","event_type":"message"}"#.to_owned(),
            r#"{"event_id":"e7","timestamp":"2024-01-01T00:00:00Z","bot_id":"other","conversation_id":null,"event_type":"message"}"#.to_owned(),
            line("e8", t, "other", "c1", r#","language":"de""#),
            line("e9", t, "bot-wanted-with-a-long-id", "c1", ""),
        ];
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (text, ends) = chunk(&lines);
        let scope = ScanScope::all()
            .with(col::BOT_ID, ["bot-wanted-with-a-long-id"])
            .with(col::CONVERSATION_ID, ["c1", "c2"]);
        let filter = RowFilter::new(&schema, &scope).unwrap();
        let rows = decode(&schema, &text, &ends, false, Some(&filter)).unwrap();
        assert_eq!(rows.kept, Some(vec![0, 2, 4, 5, 6, 8]));
        let whole = decode(&schema, &text, &ends, false, None).unwrap();
        let kept_rows: Vec<_> = [0, 2, 4, 5, 6, 8]
            .iter()
            .map(|&i| as_rows(&whole.batch)[i].clone())
            .collect();
        assert_eq!(as_rows(&rows.batch), kept_rows);
        // Only the kept rows' long values are in the buffer: five
        // timestamps of 20 bytes, three bot ids of 25.
        let language = rows.batch.column(5).as_string_view();
        assert_eq!(language.data_buffers()[0].len(), 5 * 20 + 3 * 25);
        // No condition it applies, no filter; a scope of other columns
        // neither (they are not applied to decoded rows).
        assert!(RowFilter::new(&schema, &ScanScope::all()).is_none());
        assert!(RowFilter::new(&schema, &ScanScope::all().with(col::TEAM_ID, ["t"])).is_none());
    }

    /// A filtered chunk's columns start with room for few rows and grow:
    /// however many lines it keeps, up to all, its batch is theirs.
    #[test]
    fn a_filter_keeping_many_lines_grows_its_columns() {
        let schema = required_schema_with(&[]);
        let scope = ScanScope::all().with(col::BOT_ID, ["b"]);
        let filter = RowFilter::new(&schema, &scope).unwrap();
        for (lines, every) in [(3 * FILTERED_ROOM + 7, 1), (5000, 3), (FILTERED_ROOM, 1)] {
            let lines: Vec<String> = (0..lines)
                .map(|i| {
                    let bot = if i % every == 0 { "b" } else { "other" };
                    format!(
                        r#"{{"event_id":"e{i}","timestamp":"2024-01-01T00:00:00Z","bot_id":"{bot}","conversation_id":"c{i}","event_type":"message"}}"#
                    )
                })
                .collect();
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let (text, ends) = chunk(&lines);
            let rows = decode(&schema, &text, &ends, true, Some(&filter)).unwrap();
            let kept: Vec<u32> = (0..lines.len() as u32)
                .filter(|i| i % every as u32 == 0)
                .collect();
            let whole = as_rows(&decode(&schema, &text, &ends, true, None).unwrap().batch);
            let expected: Vec<_> = kept.iter().map(|&i| whole[i as usize].clone()).collect();
            assert_eq!(as_rows(&rows.batch), expected);
            assert_eq!(rows.kept, Some(kept));
        }
    }

    /// A line of bot `bot` whose `team_id` is `team` (`None`: absent,
    /// `"null"`: null).
    fn team_line(id: usize, bot: &str, team: Option<&str>) -> String {
        let team = match team {
            None => String::new(),
            Some("null") => r#","team_id":null"#.to_owned(),
            Some(t) => format!(r#","team_id":"{t}""#),
        };
        format!(
            r#"{{"event_id":"e{id}","timestamp":"2024-01-01T00:00:00Z","bot_id":"{bot}","conversation_id":"c","event_type":"message"{team}}}"#
        )
    }

    fn team_schema() -> SchemaRef {
        required_schema_with(&["team_id"])
    }

    /// The schema of the required columns, then `more`.
    fn required_schema_with(more: &[&str]) -> SchemaRef {
        let mut names = vec![
            "event_id",
            "timestamp",
            "bot_id",
            "conversation_id",
            "event_type",
        ];
        names.extend_from_slice(more);
        decode_schema_of(&names)
    }

    /// A team's filter keeps every line of the bots with a line naming the
    /// team, those before it in the chunk too (the chunk is read again),
    /// and leaves out the other bots' valid lines, recording both.
    #[test]
    fn a_team_filter_keeps_every_line_of_the_teams_bots() {
        let schema = team_schema();
        // 17 and 23 bytes: bots that share their first 16 bytes.
        let (a, b) = ("bot-of-the-team-", "bot-of-the-team-but-not");
        let lines = [
            team_line(0, a, Some("null")),
            team_line(1, b, Some("t2")),
            team_line(2, "x", None),
            team_line(3, a, Some("t1")),
            team_line(4, b, Some("t1-not")),
            team_line(5, a, Some("t2")),
            team_line(6, "x", Some("t1")),
        ];
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (text, ends) = chunk(&lines);
        let scope = ScanScope::all().keeping_team("t1");
        let filter = RowFilter::new(&schema, &scope).unwrap();
        let rows = decode(&schema, &text, &ends, true, Some(&filter)).unwrap();
        // Bot `x` names the team on its last line only: its first is kept
        // too.
        assert_eq!(rows.kept, Some(vec![0, 2, 3, 5, 6]));
        let mut known = scope.team_rows().unwrap().known_bots().to_vec();
        known.sort();
        assert_eq!(known, [a, "x"]);
        assert!(!scope.team_mixed());

        // The next chunk starts knowing them: `a`'s lines are kept though
        // none names the team, and `b` is still left out.
        let lines = [
            team_line(7, a, None),
            team_line(8, b, None),
            team_line(9, "x", Some("t2")),
        ];
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (text, ends) = chunk(&lines);
        let rows = decode(&schema, &text, &ends, true, Some(&filter)).unwrap();
        assert_eq!(rows.kept, Some(vec![0, 2]));
        assert!(!scope.team_mixed());

        // A chunk where `b` names the team: its lines left out before were
        // in other chunks, so the filtered answer cannot be trusted.
        let lines = [team_line(10, b, Some("t1"))];
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (text, ends) = chunk(&lines);
        let rows = decode(&schema, &text, &ends, true, Some(&filter)).unwrap();
        assert_eq!(rows.kept, Some(vec![0]));
        assert!(scope.team_mixed());
    }

    /// Without a `team_id` column read, no line names the team: every
    /// valid line is left out, and lines with a problem are kept.
    #[test]
    fn a_team_filter_without_the_team_column_keeps_only_lines_with_problems() {
        let schema = required_schema_with(&[]);
        let lines = [
            team_line(0, "a", Some("t1")),
            r#"{"event_id":"e1","timestamp":"soon","bot_id":"a","conversation_id":"c","event_type":"message"}"#.to_owned(),
            r#"{"event_id":"e2","timestamp":"2024-01-01T00:00:00Z","bot_id":"a","event_type":"message"}"#.to_owned(),
        ];
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (text, ends) = chunk(&lines);
        let scope = ScanScope::all().keeping_team("t1");
        let filter = RowFilter::new(&schema, &scope).unwrap();
        let rows = decode(&schema, &text, &ends, true, Some(&filter)).unwrap();
        assert_eq!(rows.kept, Some(vec![1, 2]));
    }

    /// The tally of a chunk's bots holds any number of them (it grows),
    /// tells apart bots that share their first 16 bytes, and finds bots
    /// known before the chunk by their bytes.
    #[test]
    fn a_bot_tally_grows_and_compares_whole_values() {
        let known = Arc::new(vec![
            "known-bot-with-a-long-name-1".to_owned(),
            "k".to_owned(),
        ]);
        let mut tally = BotTally::new(known);
        let names: Vec<String> = (0..500)
            .map(|i| format!("known-bot-with-a-long-name-{i}"))
            .chain(["k".to_owned(), String::new()])
            .collect();
        let mut text = Vec::new();
        let mut spans = Vec::new();
        for name in &names {
            spans.push((text.len(), text.len() + name.len()));
            text.extend_from_slice(name.as_bytes());
            text.push(b' ');
        }
        for &(from, to) in &spans {
            tally.slot_of(&text, from, to);
        }
        for (i, &(from, to)) in spans.iter().enumerate() {
            let slot = tally.slot_of(&text, from, to);
            assert_eq!(
                tally.bytes(&tally.slots[slot], &text),
                &text[from..to],
                "{i}"
            );
            let team = tally.is_team_bot(slot);
            assert_eq!(
                team,
                names[i] == "known-bot-with-a-long-name-1" || names[i] == "k",
                "{i}"
            );
        }
        // 500 new values (one of the 500 names and "k" were known).
        assert_eq!(tally.used, 502);
        assert!(tally.slots.len() >= 1024);
        let fifth = tally.slot_of(&text, spans[5].0, spans[5].1);
        tally.note(fifth, WITH_TEAM);
        assert!(!tally.inconsistent());
        tally.note(fifth, WITHOUT_TEAM);
        assert!(tally.inconsistent());
        tally.know_team_bots();
        assert!(!tally.inconsistent());
        assert!(tally.is_team_bot(fifth));
    }

    #[test]
    fn anything_else_is_left_to_arrow_json() {
        for line in [
            r#"{"event_id":"with \" escape"}"#,
            r#"{"event_id":"\u00e9"}"#,
            r#"{"ev\u0065nt_id":"e"}"#,
            r#"{"event_id":1}"#,
            r#"{"other":1}"#,
            r#"{"other":{"nested":"x"}}"#,
            r#"{"other":true}"#,
            r#"{"event_id":"e","event_id":"f"}"#,
            r#"{"event_id":"e"}{"event_id":"f"}"#,
            r#"{"event_id":"e"} x"#,
            r#"{"event_id":"e",}"#,
            r#"{,"event_id":"e"}"#,
            r#"{"event_id" "e"}"#,
            r#"{"event_id":"e""#,
            r#"{"event_id":nul}"#,
            "{\"event_id\":\"tab\tinside\"}",
            // Past the bytes looked at one by one.
            "{\"event_id\":\"a string longer than thirty-two bytes, tab\there\"}",
            r#"{"event_id":"a string longer than thirty-two bytes, \" escaped"}"#,
            r#"["event_id","e"]"#,
            r#""just a string""#,
        ] {
            assert_eq!(flat(&[line]), None, "{line}");
        }
        // Blank lines are no rows, wherever they are.
        let rows = flat(&[
            "",
            r#"{"event_id":"e"}"#,
            " \t",
            "",
            r#"{"event_id":"f"}"#,
            " ",
        ]);
        assert_eq!(rows.map(|r| r.len()), Some(2));
        let (mut text, ends) = chunk(&[r#"{"event_id":"e"}"#]);
        text[13] = 0xff; // invalid UTF-8
        assert!(decode(&schema(), &text, &ends, false, None).is_none());
    }

    proptest! {
        /// On random lines made of JSON pieces, valid or not, the flat
        /// decoder either declines or gives exactly arrow-json's rows.
        #[test]
        fn agrees_with_arrow_json_whenever_it_decodes(
            lines in proptest::collection::vec(
                proptest::collection::vec(
                    prop_oneof![
                        Just("{".to_owned()), Just("}".to_owned()), Just(",".to_owned()),
                        Just(":".to_owned()), Just(" ".to_owned()), Just("\t".to_owned()),
                        Just("null".to_owned()), Just("1".to_owned()),
                        Just("\"event_id\"".to_owned()), Just("\"bot_id\"".to_owned()),
                        Just("\"language\"".to_owned()), Just("\"other\"".to_owned()),
                        "\"[a-zé✓ \\\\\"\\t]{0,20}\"",
                    ],
                    0..16,
                ),
                1..12,
            ),
        ) {
            let lines: Vec<String> = lines.iter().map(|pieces| pieces.concat()).collect();
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let (text, _) = chunk(&lines);
            // Blank lines are no rows.
            let rows = lines.iter().filter(|l| !l.trim_matches([' ', '\t']).is_empty()).count();
            if let Some(got) = flat(&lines) {
                prop_assert_eq!(Some(got), reference(&text, rows));
            }
        }

        /// Objects of the three keys in any order, with plain values:
        /// always taken, always as arrow-json decodes them.
        #[test]
        fn plain_objects_are_always_taken(
            rows in proptest::collection::vec(
                proptest::collection::vec(
                    (0usize..4, proptest::option::of("[a-zA-Z0-9 é✓_-]{0,30}"), " {0,2}"),
                    0..4,
                ),
                1..40,
            ),
        ) {
            let keys = ["event_id", "bot_id", "language", "unknown"];
            let lines: Vec<String> = rows
                .iter()
                .map(|pairs| {
                    let mut seen = Vec::new();
                    let pairs: Vec<String> = pairs
                        .iter()
                        .filter(|(k, _, _)| {
                            let new = !seen.contains(k);
                            seen.push(*k);
                            new
                        })
                        .map(|(k, v, space)| {
                            let v = v.as_ref().map_or("null".to_owned(), |v| format!("\"{v}\""));
                            format!("{space}\"{}\"{space}:{space}{v}{space}", keys[*k])
                        })
                        .collect();
                    format!("{{{}}}", pairs.join(","))
                })
                .collect();
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let (text, ends) = chunk(&lines);
            let rows = flat(&lines);
            prop_assert!(rows.is_some(), "{:?}", lines);
            prop_assert_eq!(rows, reference(&text, ends.len()));
        }
    }
}
