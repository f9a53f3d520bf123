//! How this process runs a routed device call: on the device's local actor
//! (`DeviceMsg::Execute`), replying with the RouterOS reply sentences. The cluster layer
//! calls it for calls that reach this node (from its own API or a peer's) after checking
//! that this node holds the device's shard lease.

use std::time::Duration;

use drover_cluster::{GatewayError, RemoteDeviceCall, RemoteDeviceReply};
use drover_device::{CommandError, DeviceMsg};
use routeros_client::{Attributes, Command, Error as ClientError, Response};
use routeros_proto::Sentence;

/// Runs calls on the local actor tree.
#[derive(Debug, Default, Clone)]
pub(crate) struct LocalGateway;

#[async_trait::async_trait]
impl drover_cluster::DeviceGateway for LocalGateway {
    async fn execute(&self, call: RemoteDeviceCall) -> Result<RemoteDeviceReply, GatewayError> {
        let command = parse_command(&call.words)?;
        let Some(actor) = drover_node::device_ref(call.device_id) else {
            return Err(GatewayError::NotFound);
        };
        let timeout = Duration::from_millis(call.timeout_ms.clamp(1, 600_000));
        let result = actor
            .call(
                |reply| DeviceMsg::Execute {
                    command: Box::new(command),
                    timeout,
                    reply,
                },
                Some(timeout + Duration::from_millis(200)),
            )
            .await;
        match result {
            Ok(ractor::rpc::CallResult::Success(Ok(response))) => Ok(RemoteDeviceReply {
                version: drover_cluster::DEVICE_CALL_VERSION,
                sentences: sentences(&response),
            }),
            Ok(ractor::rpc::CallResult::Success(Err(e))) => Err(map_error(e)),
            Ok(ractor::rpc::CallResult::Timeout) => Err(GatewayError::Timeout),
            Ok(ractor::rpc::CallResult::SenderError) | Err(_) => Err(GatewayError::NotFound),
        }
    }
}

/// One command sentence from its words; the session's own `.tag` is not negotiable.
fn parse_command(words: &[String]) -> Result<Command, GatewayError> {
    if words.is_empty() || words.len() > 256 || words.iter().any(|w| w.len() > 65_536) {
        return Err(GatewayError::Invalid {
            reason: "a command is 1-256 words of at most 64 KiB".into(),
        });
    }
    if words.iter().any(|w| w.starts_with(".tag=")) {
        return Err(GatewayError::Invalid {
            reason: ".tag is set by the session".into(),
        });
    }
    Command::parse(&Sentence::from_strs(words)).map_err(|e| GatewayError::Invalid {
        reason: e.to_string(),
    })
}

fn attribute_words(kind: &str, attrs: &Attributes) -> Vec<String> {
    std::iter::once(kind.to_owned())
        .chain(
            attrs
                .iter()
                .map(|(k, v)| format!("={k}={}", String::from_utf8_lossy(v))),
        )
        .collect()
}

fn sentences(r: &Response) -> Vec<Vec<String>> {
    r.rows
        .iter()
        .map(|row| attribute_words("!re", row))
        .chain(std::iter::once(attribute_words("!done", &r.done)))
        .collect()
}

fn map_error(e: CommandError) -> GatewayError {
    match e {
        CommandError::NotConnected { status } => GatewayError::NotConnected {
            status: status.to_string(),
        },
        CommandError::Device(ClientError::Timeout { .. }) => GatewayError::Timeout,
        CommandError::Device(e @ (ClientError::Trap { .. } | ClientError::Fatal { .. })) => {
            GatewayError::Device {
                message: e.to_string(),
            }
        }
        CommandError::Device(e) => GatewayError::Internal {
            message: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_tags_are_refused() {
        let c = parse_command(&["/interface/print".into(), "?type=ether".into()]).unwrap();
        assert_eq!(c.path, "/interface/print");
        assert!(parse_command(&[]).is_err());
        assert!(parse_command(&["/x".into(), ".tag=5".into()]).is_err());
    }
}
