//! What a tool call knows about its client, and how a destructive tool asks the user to confirm.
//!
//! Two ways to ask, by protocol revision:
//!
//! - The `initialize` revisions (2025-06-18, 2025-11-25): an `elicitation/create` request to the
//!   client in the middle of the call.
//! - 2026-07-28 and later, where a server may not send requests: the call answers with an
//!   input-required result (`inputRequests.confirm` plus a sealed `requestState`); the client asks
//!   its user and calls again with the answer and the state. The state is authenticated with a
//!   key of this process (HMAC-SHA-256) and binds the tool, its arguments, the target id and an
//!   expiry; each state confirms (or declines) once. An edited, foreign, replayed or expired state
//!   is refused and nothing is done.
//!
//! A client that cannot ask its user (no elicitation capability) gets the design's behaviour: the
//! call proceeds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rmcp::RoleServer;
use rmcp::model::{
    ElicitRequest, ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationSchema,
    InputRequest, InputRequests, InputRequiredResult, InputResponses, JsonObject,
};
use rmcp::service::{ElicitationError, Peer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::tools::ToolError;

/// How long a user has to answer a confirmation request (either way of asking).
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(300);

/// The key of the one input request a confirmation makes.
pub const CONFIRM_INPUT: &str = "confirm";

/// What a call knows about its MCP client.
#[derive(Clone, Default)]
pub struct Session {
    asking: Asking,
}

#[derive(Clone, Default)]
enum Asking {
    /// No client (internal calls, the bench): nobody to ask.
    #[default]
    Nobody,
    /// An `initialize` revision: ask through the peer.
    Peer(Peer<RoleServer>),
    /// 2026-07-28 or later: ask with an input-required result.
    Rounds(Arc<Rounds>),
}

/// One `tools/call` on a revision without server-to-client requests.
struct Rounds {
    tool: String,
    /// Digest of the call's arguments (canonical JSON).
    arguments: String,
    can_elicit: bool,
    responses: Option<InputResponses>,
    state: Option<String>,
    /// Set when the call must answer with an input-required result instead.
    input_required: Mutex<Option<InputRequiredResult>>,
}

/// The user's answer to a confirmation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// The user confirmed.
    Confirmed,
    /// The client cannot ask (no elicitation capability): the call proceeds, as the design says.
    NotAsked,
    /// The user declined or dismissed the request: do nothing.
    Declined,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct Confirm {
    /// Tick to go ahead.
    confirm: bool,
}
rmcp::elicit_safe!(Confirm);

impl Session {
    /// A call on an `initialize` revision: confirmation through `elicitation/create`.
    pub fn with_peer(peer: Peer<RoleServer>) -> Session {
        Session {
            asking: Asking::Peer(peer),
        }
    }

    /// A call on 2026-07-28 or later: confirmation through an input-required result. `responses`
    /// and `state` are what the client sent back from an earlier round, if anything.
    pub fn with_rounds(
        tool: &str,
        arguments: Option<&JsonObject>,
        can_elicit: bool,
        responses: Option<InputResponses>,
        state: Option<String>,
    ) -> Session {
        Session {
            asking: Asking::Rounds(Arc::new(Rounds {
                tool: tool.to_owned(),
                arguments: arguments_digest(arguments),
                can_elicit,
                responses,
                state,
                input_required: Mutex::new(None),
            })),
        }
    }

    /// Whether the call should build a question for the user (it is asked now): the client can
    /// ask, and, on 2026-07-28, this is the first round.
    pub fn can_confirm(&self) -> bool {
        match &self.asking {
            Asking::Nobody => false,
            Asking::Peer(peer) => peer
                .supported_elicitation_modes()
                .contains(&rmcp::service::ElicitationMode::Form),
            Asking::Rounds(rounds) => rounds.can_elicit && rounds.state.is_none(),
        }
    }

    /// Asks the user to confirm a destructive action on `target` (an id), when the client can.
    ///
    /// On 2026-07-28 the first round ends here: this returns an error and the call answers with
    /// the input-required result instead ([`Session::take_input_required`]); the second round
    /// checks the state and reads the answer.
    pub async fn confirm(&self, question: String, target: &str) -> Result<Confirmation, ToolError> {
        match &self.asking {
            Asking::Nobody => Ok(Confirmation::NotAsked),
            Asking::Peer(peer) => ask_peer(peer, question).await,
            Asking::Rounds(rounds) => rounds.confirm(question, target),
        }
    }

    /// The input-required result this call answers with instead of its own, if it asked.
    pub fn take_input_required(&self) -> Option<InputRequiredResult> {
        match &self.asking {
            Asking::Rounds(rounds) => rounds
                .input_required
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
            _ => None,
        }
    }
}

async fn ask_peer(peer: &Peer<RoleServer>, question: String) -> Result<Confirmation, ToolError> {
    match peer
        .elicit_with_timeout::<Confirm>(question, Some(CONFIRM_TIMEOUT))
        .await
    {
        Ok(Some(Confirm { confirm: true })) => Ok(Confirmation::Confirmed),
        Ok(_) | Err(ElicitationError::UserDeclined | ElicitationError::UserCancelled) => {
            Ok(Confirmation::Declined)
        }
        Err(ElicitationError::CapabilityNotSupported) => Ok(Confirmation::NotAsked),
        Err(ElicitationError::NoContent | ElicitationError::ParseError { .. }) => {
            Ok(Confirmation::Declined)
        }
        Err(error) => Err(ToolError(format!(
            "could not ask the user for confirmation ({error}); nothing was done"
        ))),
    }
}

impl Rounds {
    fn confirm(&self, question: String, target: &str) -> Result<Confirmation, ToolError> {
        if !self.can_elicit {
            return Ok(Confirmation::NotAsked);
        }
        let Some(state) = &self.state else {
            return self.ask(question, target);
        };
        let sealed = sealer().open(state)?;
        let refused = |why: &str| {
            Err(ToolError(format!(
                "the confirmation state was issued {why}; nothing was done. Call {} again \
                 without requestState to be asked anew.",
                self.tool
            )))
        };
        if sealed.tool != self.tool {
            return refused(&format!("for {}, not {}", sealed.tool, self.tool));
        }
        if sealed.arguments != self.arguments {
            return refused("for other arguments");
        }
        if sealed.target != target {
            return refused(&format!("for {}, not {target}", sealed.target));
        }
        sealer().spend(&sealed)?;
        let answer = self
            .responses
            .as_ref()
            .and_then(|responses| responses.get(CONFIRM_INPUT))
            .ok_or_else(|| {
                ToolError(format!(
                    "the answer to the confirmation (inputResponses.{CONFIRM_INPUT}) is missing; \
                     nothing was done"
                ))
            })?;
        let answer: ElicitResult = serde_json::from_value(answer.clone()).map_err(|error| {
            ToolError(format!(
                "inputResponses.{CONFIRM_INPUT} is not an elicitation result ({error}); nothing \
                 was done"
            ))
        })?;
        let ticked = answer
            .content
            .as_ref()
            .and_then(|content| content.get("confirm"))
            .and_then(Value::as_bool)
            == Some(true);
        Ok(match answer.action {
            ElicitationAction::Accept if ticked => Confirmation::Confirmed,
            _ => Confirmation::Declined,
        })
    }

    /// The first round: records the input-required result and stops the call.
    fn ask(&self, question: String, target: &str) -> Result<Confirmation, ToolError> {
        let schema = ElicitationSchema::from_type::<Confirm>()
            .map_err(|e| ToolError(format!("confirmation form: {e}")))?;
        let request = InputRequest::Elicitation(ElicitRequest::new(
            ElicitRequestParams::FormElicitationParams {
                meta: None,
                message: question,
                requested_schema: schema,
            },
        ));
        let state = sealer().seal(&self.tool, &self.arguments, target)?;
        let mut requests = InputRequests::new();
        requests.insert(CONFIRM_INPUT.to_owned(), request);
        *self
            .input_required
            .lock()
            .unwrap_or_else(PoisonError::into_inner) =
            Some(InputRequiredResult::new(Some(requests), Some(state)));
        Err(ToolError(
            "the user is asked to confirm (input required)".to_owned(),
        ))
    }
}

/// What a sealed confirmation state says.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct SealedState {
    tool: String,
    arguments: String,
    target: String,
    nonce: String,
    /// Unix seconds after which the state is refused.
    expires: u64,
}

/// The process's key for confirmation states and the states already used.
struct Sealer {
    key: ring::hmac::Key,
    /// Nonce → expiry of the states that confirmed or declined once.
    spent: Mutex<HashMap<String, u64>>,
}

fn sealer() -> &'static Sealer {
    static SEALER: OnceLock<Sealer> = OnceLock::new();
    SEALER.get_or_init(|| {
        let key: [u8; 32] = rand::random();
        Sealer {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
            spent: Mutex::default(),
        }
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl Sealer {
    fn seal(&self, tool: &str, arguments: &str, target: &str) -> Result<String, ToolError> {
        let nonce: [u8; 16] = rand::random();
        let state = SealedState {
            tool: tool.to_owned(),
            arguments: arguments.to_owned(),
            target: target.to_owned(),
            nonce: hex(&nonce),
            expires: now() + CONFIRM_TIMEOUT.as_secs(),
        };
        let payload = serde_json::to_vec(&state)
            .map_err(|e| ToolError(format!("confirmation state: {e}")))?;
        let tag = ring::hmac::sign(&self.key, &payload);
        Ok(format!("v1.{}.{}", hex(&payload), hex(tag.as_ref())))
    }

    /// The state's contents, if this process sealed it, unaltered, and it has not expired.
    fn open(&self, state: &str) -> Result<SealedState, ToolError> {
        let not_ours = || {
            ToolError(
                "the confirmation state (requestState) was altered or was not issued by this \
                 server (a restarted server issues new ones); nothing was done. Call the tool \
                 again without requestState to be asked anew."
                    .to_owned(),
            )
        };
        let mut parts = state.split('.');
        let (Some("v1"), Some(payload), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(not_ours());
        };
        let (Some(payload), Some(tag)) = (unhex(payload), unhex(tag)) else {
            return Err(not_ours());
        };
        ring::hmac::verify(&self.key, &payload, &tag).map_err(|_| not_ours())?;
        let sealed: SealedState = serde_json::from_slice(&payload).map_err(|_| not_ours())?;
        if now() > sealed.expires {
            return Err(ToolError(format!(
                "the confirmation expired (a user has {} s to answer); nothing was done. Call \
                 the tool again without requestState to be asked anew.",
                CONFIRM_TIMEOUT.as_secs()
            )));
        }
        Ok(sealed)
    }

    /// Marks a state used; a second use is refused.
    fn spend(&self, sealed: &SealedState) -> Result<(), ToolError> {
        let mut spent = self.spent.lock().unwrap_or_else(PoisonError::into_inner);
        let now = now();
        spent.retain(|_, expires| *expires >= now);
        if spent.insert(sealed.nonce.clone(), sealed.expires).is_some() {
            return Err(ToolError(
                "this confirmation was already used; nothing was done. Call the tool again \
                 without requestState to be asked anew."
                    .to_owned(),
            ));
        }
        Ok(())
    }
}

/// SHA-256 of the arguments as canonical JSON (object keys sorted), hex.
fn arguments_digest(arguments: Option<&JsonObject>) -> String {
    fn canonical(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    canonical(&map[key], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::new();
    canonical(
        &Value::Object(arguments.cloned().unwrap_or_default()),
        &mut text,
    );
    hex(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| {
            text.get(at..at + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(value: Value) -> JsonObject {
        match value {
            Value::Object(map) => map,
            _ => JsonObject::new(),
        }
    }

    #[test]
    fn a_state_opens_once_unaltered_and_binds_what_it_sealed() {
        let digest = arguments_digest(Some(&args(serde_json::json!({"model_id": "m1"}))));
        let state = sealer().seal("delete_model", &digest, "m1").unwrap();
        let opened = sealer().open(&state).unwrap();
        assert_eq!(
            (opened.tool.as_str(), opened.target.as_str()),
            ("delete_model", "m1")
        );
        assert!(sealer().spend(&opened).is_ok());
        let again = sealer().open(&state).unwrap();
        assert!(
            sealer()
                .spend(&again)
                .unwrap_err()
                .0
                .contains("already used")
        );
        // One hex digit changed anywhere: refused.
        for at in [3, state.len() / 2, state.len() - 1] {
            let mut edited: Vec<char> = state.chars().collect();
            edited[at] = if edited[at] == '0' { '1' } else { '0' };
            let edited: String = edited.into_iter().collect();
            assert!(sealer().open(&edited).is_err(), "{at}");
        }
        assert!(sealer().open("v1.zz.00").is_err());
        assert!(sealer().open("").is_err());
    }

    #[test]
    fn argument_digests_ignore_key_order_only() {
        let a = arguments_digest(Some(&args(serde_json::json!({"a": 1, "b": [1, 2]}))));
        let b = arguments_digest(Some(&args(serde_json::json!({"b": [1, 2], "a": 1}))));
        let c = arguments_digest(Some(&args(serde_json::json!({"a": 1, "b": [2, 1]}))));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            arguments_digest(None),
            arguments_digest(Some(&JsonObject::new()))
        );
    }
}
