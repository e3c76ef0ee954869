//! Ticket files of any kind, read as the pipeline reads them: the kind by
//! the envelope's detail-type (`managed::TicketKind::of`, as the bus rules
//! route), the ticket by that kind's own parser. `replay` sends a ticket to
//! the queue its kind goes to.

use shared::access::AccessChangeTicket;
use shared::error::Refusal;
use shared::lifecycle::OffboardingTicket;
use shared::managed::{parse_ticket, TicketKind};

/// A ticket file, read as the stage its kind goes to reads it.
#[derive(Debug, Clone)]
pub enum AnyTicket {
    Onboarding(shared::ticket::Ticket),
    Offboarding(OffboardingTicket),
    AccessChange(AccessChangeTicket),
}

impl AnyTicket {
    pub fn kind(&self) -> TicketKind {
        match self {
            AnyTicket::Onboarding(_) => TicketKind::Onboarding,
            AnyTicket::Offboarding(_) => TicketKind::Offboarding,
            AnyTicket::AccessChange(_) => TicketKind::AccessChange,
        }
    }

    /// As written in the ticket.
    pub fn ticket_id(&self) -> &str {
        match self {
            AnyTicket::Onboarding(t) => &t.ticket_id,
            AnyTicket::Offboarding(t) => &t.ticket_id,
            AnyTicket::AccessChange(t) => &t.ticket_id,
        }
    }
}

/// `onboarding`, `offboarding`, `access_change`: a kind in reports.
pub fn kind_name(kind: TicketKind) -> &'static str {
    match kind {
        TicketKind::Onboarding => "onboarding",
        TicketKind::Offboarding => "offboarding",
        TicketKind::AccessChange => "access_change",
    }
}

/// Why a JSON value is not a ticket of any kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotRead {
    /// An EventBridge event no rule of the pipeline's bus routes: not a
    /// ticket at all.
    OtherEvent(String),
    /// A ticket of this kind (by its envelope, or bare: onboarding) that
    /// the stage would refuse as unreadable; with a hint when a bare body
    /// reads as another kind.
    Refused { kind: TicketKind, refusal: Refusal, hint: Option<String> },
}

impl std::fmt::Display for NotRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotRead::OtherEvent(why) => f.write_str(why),
            NotRead::Refused { kind, refusal, hint } => {
                let kind = kind_name(*kind).replace('_', " ");
                write!(f, "not a readable {kind} ticket: {refusal}")?;
                if let Some(hint) = hint {
                    write!(f, " ({hint})")?;
                }
                Ok(())
            }
        }
    }
}

/// Reads a ticket of any kind as the bus rules and stages do: the kind by
/// the envelope's detail-type (`TicketKind::of`; a bare body is an
/// onboarding ticket), the ticket by that kind's own parser.
pub fn read_ticket(value: &serde_json::Value) -> Result<AnyTicket, NotRead> {
    let Some(kind) = TicketKind::of(value) else {
        return Err(NotRead::OtherEvent(format!(
            "an EventBridge event of source {} / detail-type {}, which no rule of the pipeline's bus routes \
             (tickets are source {:?} with detail-type {:?}, {:?} or {:?})",
            value.get("source").unwrap_or(&serde_json::Value::Null),
            value.get("detail-type").unwrap_or(&serde_json::Value::Null),
            shared::ticket::TICKET_SOURCE,
            TicketKind::Onboarding.detail_type(),
            TicketKind::Offboarding.detail_type(),
            TicketKind::AccessChange.detail_type(),
        )));
    };
    let refused = |refusal| NotRead::Refused { kind, refusal, hint: None };
    match kind {
        TicketKind::Onboarding => shared::ticket::parse_value(value.clone()).map(AnyTicket::Onboarding).map_err(|r| {
            let hint = (value.get("detail").is_none()).then(|| bare_hint(value)).flatten();
            NotRead::Refused { kind, refusal: r, hint }
        }),
        TicketKind::Offboarding => parse_ticket(&value.to_string(), kind).map(AnyTicket::Offboarding).map_err(refused),
        TicketKind::AccessChange => {
            parse_ticket(&value.to_string(), kind).map(AnyTicket::AccessChange).map_err(refused)
        }
    }
}

/// A bare body is an onboarding ticket (CONTRACT.md section 6); one that
/// fails as such but reads as another kind gets told how to send it.
fn bare_hint(value: &serde_json::Value) -> Option<String> {
    let mut kinds = Vec::new();
    if serde_json::from_value::<OffboardingTicket>(value.clone()).is_ok() {
        kinds.push(TicketKind::Offboarding);
    }
    if serde_json::from_value::<AccessChangeTicket>(value.clone()).is_ok() {
        kinds.push(TicketKind::AccessChange);
    }
    if kinds.is_empty() {
        return None;
    }
    let envelopes: Vec<String> = kinds
        .iter()
        .map(|k| format!("an {} ticket, detail-type {:?}", kind_name(*k).replace('_', " "), k.detail_type()))
        .collect();
    Some(format!(
        "a body without an EventBridge envelope is read as an onboarding ticket; if this is {}, put it in its \
         envelope (source {:?}, \"detail\": the ticket)",
        envelopes.join(", or "),
        shared::ticket::TICKET_SOURCE
    ))
}
