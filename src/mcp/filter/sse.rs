//! The `text/event-stream` side of the filter: events pass one by one as
//! they complete, each looked at once.
//!
//! The scan keeps its place: bytes already scanned for the end of the
//! current event are not scanned again when the next chunk arrives, and a
//! completed event is cut off the buffer, so the work is linear in the
//! stream. The buffer holds at most one incomplete event, bounded by the
//! layer's response limit.

use std::{
    borrow::Cow,
    pin::Pin,
    task::{ready, Context, Poll},
};

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body::Frame;

use super::{first_byte, may_be_json, Rewriter, Unreadable};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// An SSE body whose events carrying list results are filtered.
pub(super) struct SseFilter<R> {
    inner: Body,
    /// The start of an event whose end has not come yet.
    buf: BytesMut,
    split: Splitter,
    /// Where each whole event of the current poll ends.
    ends: Ends,
    filter: R,
    /// Before the stream's first event (which may start with a byte order
    /// mark).
    first: bool,
    done: bool,
}

impl<R: Rewriter> SseFilter<R> {
    pub(super) fn new(inner: Body, filter: R) -> Self {
        Self {
            inner,
            buf: BytesMut::new(),
            split: Splitter::default(),
            ends: Ends::default(),
            filter,
            first: true,
            done: false,
        }
    }
}

/// The offset of the first CR or LF in `bytes`. Eight bytes at a time
/// (SWAR, as the JSON scanner's string runs): the zero-byte test flags a
/// byte only after a truly flagged one, so the lowest flag is exact.
#[inline]
fn line_break(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = ONES << 7;
    let mut i = 0;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let lf = word ^ (ONES * u64::from(b'\n'));
        let cr = word ^ (ONES * u64::from(b'\r'));
        let flags = ((lf.wrapping_sub(ONES) & !lf) | (cr.wrapping_sub(ONES) & !cr)) & HIGHS;
        if flags != 0 {
            return Some(i + (flags.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    bytes[i..]
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .map(|p| i + p)
}

/// Finds where events end, remembering how far it has looked.
#[derive(Debug, Default)]
pub(super) struct Splitter {
    /// The first byte not yet looked at.
    scan: usize,
    /// Where the current line starts.
    line_start: usize,
}

impl Splitter {
    /// The end of the first event in `buf` (after its blank line), looking
    /// only at bytes it has not looked at before. Lines end with CRLF, LF
    /// or CR (WHATWG HTML, "Parsing an event stream"); a CR at the end of
    /// `buf` waits for the next byte unless the stream has ended (`eof`).
    /// After `Some(end)` the caller cuts `buf` at `end`.
    pub(super) fn next(&mut self, buf: &[u8], eof: bool) -> Option<usize> {
        let mut i = self.scan;
        while let Some(off) = line_break(&buf[i..]) {
            let at = i + off;
            let next = match (buf[at], buf.get(at + 1)) {
                (b'\r', Some(b'\n')) => at + 2,
                (b'\r', None) if !eof => {
                    self.scan = at;
                    return None;
                }
                _ => at + 1,
            };
            if at == self.line_start {
                *self = Self::default();
                return Some(next);
            }
            self.line_start = next;
            i = next;
        }
        self.scan = buf.len();
        None
    }
}

/// The lines of an event, without their ends.
fn lines(raw: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = raw;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = line_break(rest).unwrap_or(rest.len());
        let line = &rest[..end];
        let skip = match (rest.get(end), rest.get(end + 1)) {
            (Some(b'\r'), Some(b'\n')) => 2,
            (Some(_), _) => 1,
            (None, _) => 0,
        };
        rest = &rest[end + skip..];
        Some(line)
    })
}

/// A line's field name and value (a leading space of the value removed).
fn field(line: &[u8]) -> (&[u8], &[u8]) {
    match line.iter().position(|&b| b == b':') {
        Some(c) => {
            let value = &line[c + 1..];
            (&line[..c], value.strip_prefix(b" ").unwrap_or(value))
        }
        None => (line, &[]),
    }
}

/// The event's data: its `data` lines joined with LF, as a client reads
/// them (borrowed when there is one).
fn data(raw: &[u8]) -> Option<Cow<'_, [u8]>> {
    let mut data: Option<Cow<'_, [u8]>> = None;
    for line in lines(raw) {
        let (name, value) = field(line);
        if name != b"data" {
            continue;
        }
        data = Some(match data {
            None => Cow::Borrowed(value),
            Some(d) => {
                let mut joined = d.into_owned();
                joined.push(b'\n');
                joined.extend_from_slice(value);
                Cow::Owned(joined)
            }
        });
    }
    data
}

/// One event, filtered when its data is a list result: `None` when it
/// goes on as it is (most events: nothing is copied), else the event
/// written again.
fn event<R: Rewriter>(filter: &R, raw: &[u8], first: bool) -> Result<Option<Vec<u8>>, Unreadable> {
    let fields = if first {
        raw.strip_prefix(BOM).unwrap_or(raw)
    } else {
        raw
    };
    if !filter.may_carry(fields) {
        return Ok(None);
    }
    let Some(data) = data(fields) else {
        return Ok(None);
    };
    if !first_byte(&data).is_some_and(may_be_json) {
        return Ok(None);
    }
    let Some(json) = filter.rewrite(&data)? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(fields.len().max(json.len()) + 16);
    for line in lines(fields) {
        if !line.is_empty() && field(line).0 != b"data" {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&json);
    out.extend_from_slice(b"\n\n");
    Ok(Some(out))
}

/// Where the whole events of one poll end: the first kept inline (one
/// event per chunk is the usual case, and needs no allocation), any more
/// in a vector kept across polls.
#[derive(Debug, Default)]
struct Ends {
    first: Option<usize>,
    more: Vec<usize>,
}

impl Ends {
    fn clear(&mut self) {
        self.first = None;
        self.more.clear();
    }

    fn push(&mut self, end: usize) {
        if self.first.is_none() {
            self.first = Some(end);
        } else {
            self.more.push(end);
        }
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.first.into_iter().chain(self.more.iter().copied())
    }
}

/// What one poll hands on: a single piece as it is (the usual case: one
/// chunk of whole events, nothing rewritten), or several joined.
#[derive(Default)]
struct Out {
    first: Option<Bytes>,
    joined: BytesMut,
}

impl Out {
    fn push(&mut self, piece: Bytes) {
        if piece.is_empty() {
            return;
        }
        match self.first.take() {
            None if self.joined.is_empty() => self.first = Some(piece),
            first => {
                if let Some(first) = first {
                    self.joined.extend_from_slice(&first);
                }
                self.joined.extend_from_slice(&piece);
            }
        }
    }

    fn finish(self) -> Option<Bytes> {
        match self.first {
            Some(first) => Some(first),
            None if self.joined.is_empty() => None,
            None => Some(self.joined.freeze()),
        }
    }
}

impl<R: Rewriter> SseFilter<R> {
    /// The whole events now available (their ends in `self.ends`); the
    /// start of an incomplete one stays in `self.buf`. A chunk that arrives
    /// while nothing is held is not copied, except for an incomplete event
    /// at its end; held bytes are never copied again.
    fn whole_events(&mut self, data: Option<Bytes>, eof: bool) -> Bytes {
        let Self {
            buf, split, ends, ..
        } = self;
        ends.clear();
        let chunk = match data {
            Some(d) if buf.is_empty() => Some(d),
            Some(d) => {
                buf.extend_from_slice(&d);
                None
            }
            None => None,
        };
        let src: &[u8] = chunk.as_deref().unwrap_or(buf);
        let mut start = 0;
        while start < src.len() {
            match split.next(&src[start..], eof) {
                Some(len) => start += len,
                // An event cut short by the end of the stream.
                None if eof => start = src.len(),
                None => break,
            }
            ends.push(start);
        }
        match chunk {
            Some(chunk) => {
                buf.extend_from_slice(&chunk[start..]);
                chunk.slice(..start)
            }
            None if start == 0 => Bytes::new(),
            None => buf.split_to(start).freeze(),
        }
    }

    /// Hands on the events of `work`, each filtered.
    fn events(&mut self, work: &Bytes, out: &mut Out) -> Result<(), Unreadable> {
        let mut start = 0;
        // Events handed on as they are, not pushed yet: one slice.
        let mut raw_from = 0;
        for end in self.ends.iter() {
            let first = std::mem::take(&mut self.first);
            if let Some(rewritten) = event(&self.filter, &work[start..end], first)? {
                out.push(work.slice(raw_from..start));
                out.push(Bytes::from(rewritten));
                raw_from = end;
            }
            start = end;
        }
        out.push(work.slice(raw_from..start));
        if self.buf.len() > self.filter.limit() {
            return Err(Unreadable::TooLarge);
        }
        Ok(())
    }
}

impl<R: Rewriter> http_body::Body for SseFilter<R> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let (data, eof) = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => (Some(data), false),
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => (None, true),
            };
            let work = this.whole_events(data, eof);
            let mut out = Out::default();
            if let Err(why) = this.events(&work, &mut out) {
                // Nothing after an unreadable event goes out: the client's
                // pending requests get an error instead.
                this.filter.withhold(why).audit(why);
                for message in this.filter.withhold(why).errors(why) {
                    out.push(Bytes::from(format!("event: message\ndata: {message}\n\n")));
                }
                this.buf = BytesMut::new();
                this.done = true;
            }
            this.done |= eof;
            if let Some(data) = out.finish() {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `text` to a splitter in chunks of `size`; the events it cuts.
    fn split(text: &[u8], size: usize) -> Vec<Vec<u8>> {
        let mut s = Splitter::default();
        let mut buf = BytesMut::new();
        let mut events = Vec::new();
        for chunk in text.chunks(size) {
            buf.extend_from_slice(chunk);
            while let Some(end) = s.next(&buf, false) {
                events.push(buf.split_to(end).to_vec());
            }
            // Linear: everything in the buffer has been looked at once and
            // is not looked at again (a CR at the end waits for its LF).
            let waiting_cr = buf.last() == Some(&b'\r');
            assert_eq!(s.scan, buf.len() - usize::from(waiting_cr));
        }
        if let Some(end) = s.next(&buf, true) {
            events.push(buf.split_to(end).to_vec());
        }
        if !buf.is_empty() {
            events.push(buf.to_vec());
        }
        events
    }

    #[test]
    fn events_end_at_a_blank_line_of_any_line_ending() {
        let text = b"data: a\n\nid: 1\r\ndata: b\r\n\r\ndata: c\r\rdata: d\n\r: comment\n\ndata: e";
        let want: Vec<&[u8]> = vec![
            b"data: a\n\n",
            b"id: 1\r\ndata: b\r\n\r\n",
            b"data: c\r\r",
            b"data: d\n\r",
            b": comment\n\n",
            b"data: e",
        ];
        for size in 1..=text.len() {
            assert_eq!(split(text, size), want, "chunks of {size}");
        }
    }

    #[test]
    fn line_breaks_are_found_wherever_they_are() {
        for len in 0..40 {
            for at in 0..len {
                for brk in [b'\n', b'\r'] {
                    // Bytes around the breaks that the SWAR test must not
                    // take for them (0x0B, 0x8A, 0x0C, 0x8D, …).
                    let mut bytes: Vec<u8> = (0..len)
                        .map(|i| [0x0B, 0x8A, 0x0C, 0x8D, b'a'][i % 5])
                        .collect();
                    bytes[at] = brk;
                    if at + 1 < len {
                        bytes[at + 1] = b'\n';
                    }
                    assert_eq!(line_break(&bytes), Some(at), "{bytes:?}");
                }
            }
            let none: Vec<u8> = (0..len).map(|i| [0x0B, 0x8A, 0x0C, 0x8D][i % 4]).collect();
            assert_eq!(line_break(&none), None);
        }
    }

    #[test]
    fn ends_keep_their_order_and_are_cleared() {
        let mut ends = Ends::default();
        assert_eq!(ends.iter().count(), 0);
        for end in [3, 9, 12] {
            ends.push(end);
        }
        assert_eq!(ends.iter().collect::<Vec<_>>(), [3, 9, 12]);
        ends.clear();
        ends.push(5);
        assert_eq!(ends.iter().collect::<Vec<_>>(), [5]);
    }

    #[test]
    fn data_is_joined_as_a_client_reads_it() {
        let raw = b"event: message\ndata:{\"a\":\ndata\ndata:  1}\n: data: no\nid: 2\n\n";
        assert_eq!(data(raw).as_deref(), Some(&b"{\"a\":\n\n 1}"[..]));
        assert_eq!(data(b"id: 1\n\n"), None);
    }

    #[test]
    fn a_long_event_in_small_chunks_is_scanned_once() {
        // 4 MiB in 1 KiB chunks: a rescan from the start on every chunk
        // would look at about 8 GiB of bytes; this looks at 4 MiB.
        let mut text = b"data: ".to_vec();
        text.resize(4 << 20, b'x');
        text.extend_from_slice(b"\n\n");
        let started = std::time::Instant::now();
        assert_eq!(split(&text, 1024).len(), 1);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
