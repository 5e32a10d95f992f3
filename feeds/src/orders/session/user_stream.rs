//! The user data stream on the order API connection: subscribed the way Binance documents for
//! the key in use, its answers, and what a refusal means for new orders (see the session's
//! module docs, "User data stream").

use super::wall_ms;
use super::OrderSession;
use super::Req;
use engine::event::ClientOrderId;
use engine::event::RejectReason;
use engine::symbol::SymbolId;
/// Where the user data stream stands on the order API connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UserStream {
    /// Not asked for (the connection is down, or the session does not subscribe).
    #[default]
    Off,
    /// Asked for (or waiting for `session.logon` first); no answer yet.
    Pending,
    /// The venue confirmed it: `executionReport`s come on this connection.
    Active,
    /// The venue refused it: no `executionReport` comes on this connection.
    Refused,
}

impl UserStream {
    /// As a small integer (for publishing in an atomic).
    pub fn code(self) -> u8 {
        match self {
            UserStream::Off => 0,
            UserStream::Pending => 1,
            UserStream::Active => 2,
            UserStream::Refused => 3,
        }
    }

    /// From [`code`](Self::code); unknown codes are `Off`.
    pub fn from_code(c: u8) -> UserStream {
        match c {
            1 => UserStream::Pending,
            2 => UserStream::Active,
            3 => UserStream::Refused,
            _ => UserStream::Off,
        }
    }

    /// Its name in status output: `off`, `pending`, `active`, `refused`.
    pub fn as_str(self) -> &'static str {
        match self {
            UserStream::Off => "off",
            UserStream::Pending => "pending",
            UserStream::Active => "active",
            UserStream::Refused => "refused",
        }
    }
}

impl OrderSession {
    /// On a new connection: `session.logon` (if configured; the user data stream is then
    /// subscribed when its reply comes), else the signed user data stream subscription at once.
    #[cold]
    pub(super) fn logon_and_subscribe(&mut self) {
        self.user_stream = UserStream::Off;
        let mut logon_queued = false;
        if self.cfg.session_logon {
            let id = self.request_id(Req::Logon);
            match self.encoder.logon(id, wall_ms(self.wall)) {
                Ok(text) => {
                    let text = text.to_string();
                    self.queued.push(text);
                    logon_queued = true;
                }
                Err(e) => self.notices.push(format!(
                    "order API: no session.logon ({e}); every request is signed"
                )),
            }
        }
        if self.cfg.user_stream {
            if logon_queued {
                // `userDataStream.subscribe` goes when the logon's reply says it was accepted.
                self.user_stream = UserStream::Pending;
            } else {
                self.subscribe_user_stream(false);
            }
        }
    }

    /// Asks for the user data stream: `userDataStream.subscribe` on a connection whose
    /// `session.logon` was accepted (`authenticated`), else the signed
    /// `userDataStream.subscribe.signature`.
    #[cold]
    pub(super) fn subscribe_user_stream(&mut self, authenticated: bool) {
        let id = self.request_id(Req::UserStream);
        let text = if authenticated {
            self.encoder.user_stream_subscribe(id)
        } else {
            self.encoder
                .user_stream_subscribe_signature(id, wall_ms(self.wall))
        };
        let text = text.to_string();
        self.queued.push(text);
        self.user_stream = UserStream::Pending;
    }

    /// The venue confirmed the user data stream.
    #[cold]
    pub(super) fn user_stream_confirmed(&mut self) {
        self.user_stream = UserStream::Active;
        self.counters.user_streams += 1;
        let how = if self.encoder.session_authenticated() {
            "userDataStream.subscribe"
        } else {
            "userDataStream.subscribe.signature"
        };
        self.notices.push(format!(
            "order API: user data stream subscribed ({how}); executionReports come on this connection"
        ));
    }

    /// The venue refused the user data stream: loud, counted, and orders that may rest are
    /// refused from now on (if so configured).
    #[cold]
    pub(super) fn user_stream_refused(&mut self, status: u16, code: i64, msg: &str) {
        self.user_stream = UserStream::Refused;
        self.counters.user_stream_refused += 1;
        let then = if self.cfg.require_user_stream {
            "GTC orders are refused (NoUserStream) until it is subscribed; IOC/FOK/market orders are settled by their replies"
        } else {
            "orders.require_user_stream is off: GTC orders still go, and their fills and end are learned only by reconciliation after a reconnect"
        };
        self.notices.push(format!(
            "error: order API: the user data stream was REFUSED by the venue (status {status}, code {code}: {msg}); no executionReport will come on this connection; {then}"
        ));
    }

    /// A successful reply to `session.logon` or to the user data stream subscription.
    #[cold]
    pub(super) fn session_reply(&mut self, req: Option<Req>) {
        match req {
            Some(Req::Logon) => {
                self.encoder.set_session_authenticated(true);
                self.counters.logons += 1;
                self.notices.push(
                    "order API: session.logon accepted; requests go unsigned on this connection"
                        .into(),
                );
                if self.cfg.user_stream {
                    self.subscribe_user_stream(true);
                }
            }
            Some(Req::UserStream) => self.user_stream_confirmed(),
            _ => {}
        }
    }

    #[cold]
    pub(super) fn refuse_no_user_stream(&mut self, client_id: ClientOrderId, symbol: SymbolId) {
        self.counters.refused_no_user_stream += 1;
        if self.counters.refused_no_user_stream <= 10 {
            self.notices.push(format!(
                "order API: {client_id} (GTC) refused: the user data stream is {} (orders.require_user_stream)",
                self.user_stream.as_str()
            ));
        }
        self.refuse(client_id, symbol, RejectReason::NoUserStream)
    }
}
