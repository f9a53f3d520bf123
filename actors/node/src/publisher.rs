//! JetStream publishing of device events with a bounded buffer (being written).
