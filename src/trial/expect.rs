//! Expected messages, made concrete for one step (addresses, thread ids, event payloads), and
//! compared with what the handler recorded.

use super::protocol::{Message, Mismatch};
use crate::case::faults::{flag_mask, EventKind, Faults, MsgExpect};
use crate::kernel::uapi::*;

/// One message a step must see, with every field that can be checked.
#[derive(Debug, Clone)]
pub struct Expected {
    pub event: u8,
    pub page: Option<usize>,
    /// The exact address (page faults).
    pub address: Option<u64>,
    pub flags: Option<u64>,
    /// The faulting thread's id (0 without UFFD_FEATURE_THREAD_ID).
    pub tid: Option<u32>,
    /// REMOVE / UNMAP: start and end; REMAP: from, to, len.
    pub payload: Option<[u64; 3]>,
    /// Must come from a uffd handed over by UFFD_EVENT_FORK (a child's fault).
    pub from_child: bool,
}

/// Where the step's accesses and events happen.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    pub base: usize,
    pub page_size: usize,
    pub thread_id: bool,
    pub exact_address: bool,
    /// The id of the thread that accesses memory in this step.
    pub tid: u32,
    pub from_child: bool,
}

impl Context {
    fn page_addr(&self, page: usize) -> u64 {
        (self.base + page * self.page_size) as u64
    }

    /// The address a fault at `offset` into `page` is reported at.
    fn fault_addr(&self, page: usize, offset: usize) -> u64 {
        if self.exact_address {
            self.page_addr(page) + offset as u64
        } else {
            // Without EXACT_ADDRESS the address is rounded down (to the huge page on hugetlb).
            self.page_addr(page) + (offset & !(4096 - 1) & !(self.page_size - 1)) as u64
        }
    }

    fn pagefault(&self, page: Option<usize>, offset: usize, flags: Option<u64>) -> Expected {
        Expected {
            event: UFFD_EVENT_PAGEFAULT,
            page,
            address: page.map(|p| self.fault_addr(p, offset)),
            flags,
            tid: Some(if self.thread_id { self.tid } else { 0 }),
            payload: None,
            from_child: self.from_child,
        }
    }

    /// Expected messages for an access of `pages` at `offset` into each.
    pub fn access(
        &self,
        faults: &Faults,
        pages: &[usize],
        write: bool,
        offset: usize,
    ) -> Vec<Expected> {
        faults
            .expand(pages, write)
            .iter()
            .map(|m| self.concrete(m, offset, None))
            .collect()
    }

    /// Expected messages for a call that raises events; `payload` gives the payload an event
    /// of this kind must carry.
    pub fn events(
        &self,
        faults: &Faults,
        payload: &dyn Fn(EventKind) -> Option<[u64; 3]>,
    ) -> Vec<Expected> {
        faults
            .expand(&[], false)
            .iter()
            .map(|m| self.concrete(m, 0, payload(m.event)))
            .collect()
    }

    fn concrete(&self, m: &MsgExpect, offset: usize, payload: Option<[u64; 3]>) -> Expected {
        match m.event {
            EventKind::Pagefault => {
                self.pagefault(m.page, offset, m.flags.as_ref().map(|f| flag_mask(f)))
            }
            other => Expected {
                event: other.code(),
                page: None,
                address: None,
                flags: None,
                tid: None,
                payload,
                from_child: false,
            },
        }
    }
}

impl Expected {
    fn matches(&self, o: &Message) -> bool {
        if o.event != self.event || (self.from_child && o.uffd == 0) {
            return false;
        }
        if self.event == UFFD_EVENT_PAGEFAULT {
            return self.address.is_none_or(|a| a == o.address())
                && self.flags.is_none_or(|f| f == o.flags())
                && self.tid.is_none_or(|t| t == o.ptid());
        }
        match (self.event, self.payload) {
            (UFFD_EVENT_REMOVE | UFFD_EVENT_UNMAP, Some(p)) => o.arg[0] == p[0] && o.arg[1] == p[1],
            (UFFD_EVENT_REMAP, Some(p)) => o.arg == p,
            _ => true,
        }
    }

    fn describe(&self) -> String {
        let name = Message::event_name(self.event);
        let child = if self.from_child { " [fork uffd]" } else { "" };
        if self.event != UFFD_EVENT_PAGEFAULT {
            return match (self.event, self.payload) {
                (UFFD_EVENT_REMAP, Some(p)) => {
                    format!("remap from 0x{:x} to 0x{:x} len 0x{:x}", p[0], p[1], p[2])
                }
                (_, Some(p)) => format!("{name} 0x{:x}..0x{:x}", p[0], p[1]),
                _ => name,
            };
        }
        let flags = self
            .flags
            .map(Message::flag_names)
            .unwrap_or_else(|| "any flags".into());
        let at = match (self.page, self.address) {
            (Some(p), Some(a)) => format!(" @ page {p} (0x{a:x})"),
            _ => String::new(),
        };
        let tid = match self.tid {
            Some(0) | None => String::new(),
            Some(t) => format!(" tid {t}"),
        };
        format!("{name} {flags}{at}{tid}{child}")
    }
}

/// Checks the observed messages are exactly the expected ones, in order.
pub fn check(expected: &[Expected], observed: &[Message]) -> Result<(), Mismatch> {
    let ok = expected.len() == observed.len()
        && expected.iter().zip(observed).all(|(e, o)| e.matches(o));
    if ok {
        return Ok(());
    }
    let want = if expected.is_empty() {
        "no message".to_string()
    } else {
        format!(
            "[{}]",
            expected
                .iter()
                .map(Expected::describe)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Err(Mismatch {
        check: "messages".into(),
        expected: want,
        observed: describe_messages(observed),
    })
}

pub fn describe_messages(messages: &[Message]) -> String {
    if messages.is_empty() {
        return "no message".into();
    }
    let items: Vec<String> = messages.iter().map(Message::describe).collect();
    format!("[{}]", items.join(", "))
}
