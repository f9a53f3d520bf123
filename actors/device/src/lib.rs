//! DeviceActor (being written).
