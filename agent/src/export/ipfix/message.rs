//! IPFIX messages (RFC 7011 section 3): header, then sets, never larger
//! than the configured maximum. Sequence numbers count the data records
//! sent before each message in this transport session.

use super::flow_table::Unattributed;
use super::template::{self, FlowRecord};

pub const VERSION: u16 = 10;
pub const HEADER_LEN: usize = 16;
const SET_HEADER_LEN: usize = 4;

/// Builds the messages of one transport session.
#[derive(Debug)]
pub struct Framer {
    domain_id: u32,
    max_len: usize,
    sequence: u32,
}

/// What to put in the messages of one export.
#[derive(Debug, Default)]
pub struct Contents<'a> {
    /// Lead with the template sets (session start, UDP refresh).
    pub templates: bool,
    pub flows: &'a [FlowRecord],
    pub unattributed: &'a [Unattributed],
}

impl Framer {
    /// `max_len`: the largest message, header included (at least large
    /// enough for the templates and one record: see `MIN_MESSAGE_LEN`).
    pub fn new(domain_id: u32, max_len: usize) -> Framer {
        Framer {
            domain_id,
            max_len: max_len.max(MIN_MESSAGE_LEN),
            sequence: 0,
        }
    }

    /// A new transport session (a TCP reconnect): sequence from 0.
    pub fn restart(&mut self) {
        self.sequence = 0;
    }

    pub fn sequence(&self) -> u32 {
        self.sequence
    }

    /// The messages that carry `c`, in order; `export_time` is Unix seconds.
    pub fn frame(&mut self, c: &Contents<'_>, export_time: u32) -> Vec<Vec<u8>> {
        let mut msgs = Vec::new();
        let mut m = Message::new(self, export_time);
        if c.templates {
            m.buf.extend_from_slice(&template::template_sets());
        }
        // Makes room for one record of template `id`: seals the message and
        // starts the next when it would not fit, opens a set for it when the
        // previous record was under another template.
        let mut put = |m: &mut Message, framer: &mut Framer, id: u16, len: usize| {
            let need = len
                + if m.set_id == Some(id) {
                    0
                } else {
                    SET_HEADER_LEN
                };
            if m.buf.len() + need > framer.max_len {
                msgs.push(std::mem::replace(m, Message::new(framer, export_time)).seal());
            }
            if m.set_id != Some(id) {
                m.open_set(id);
            }
            framer.sequence = framer.sequence.wrapping_add(1);
        };
        for r in c.flows {
            let (id, len) = template::flow_template(r);
            put(&mut m, self, id, len);
            template::put_flow(&mut m.buf, r);
        }
        for u in c.unattributed {
            let (id, len) = template::unattributed_template(u);
            put(&mut m, self, id, len);
            template::put_unattributed(&mut m.buf, self.domain_id, u);
        }
        if m.buf.len() > HEADER_LEN {
            msgs.push(m.seal());
        }
        msgs
    }
}

/// Smallest maximum message size accepted: header, every template, and
/// the largest record in its own set.
pub const MIN_MESSAGE_LEN: usize = 512;

struct Message {
    buf: Vec<u8>,
    /// The data set being filled, and where its header is.
    set_id: Option<u16>,
    set_start: usize,
}

impl Message {
    fn new(f: &Framer, export_time: u32) -> Message {
        let mut buf = Vec::with_capacity(f.max_len);
        buf.extend_from_slice(&VERSION.to_be_bytes());
        buf.extend_from_slice(&0u16.to_be_bytes());
        buf.extend_from_slice(&export_time.to_be_bytes());
        buf.extend_from_slice(&f.sequence.to_be_bytes());
        buf.extend_from_slice(&f.domain_id.to_be_bytes());
        Message {
            buf,
            set_id: None,
            set_start: 0,
        }
    }

    fn open_set(&mut self, id: u16) {
        self.close_set();
        self.set_id = Some(id);
        self.set_start = self.buf.len();
        self.buf.extend_from_slice(&id.to_be_bytes());
        self.buf.extend_from_slice(&0u16.to_be_bytes());
    }

    fn close_set(&mut self) {
        if self.set_id.take().is_some() {
            let len = (self.buf.len() - self.set_start) as u16;
            self.buf[self.set_start + 2..self.set_start + 4].copy_from_slice(&len.to_be_bytes());
        }
    }

    fn seal(mut self) -> Vec<u8> {
        self.close_set();
        let len = self.buf.len() as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
        self.buf
    }
}

const _: () = assert!(
    HEADER_LEN
        + 2 * SET_HEADER_LEN
        + 4 * (4 + 15 * 4)
        + 2 * (6 + 5 * 4)
        + SET_HEADER_LEN
        + template::FLOW_V6_LEN
        <= MIN_MESSAGE_LEN
);
