//! The catalogue of emulated hardware models and their static facts (board name, CPU,
//! memory, firmware type, health sensors, whether they have radios).

/// One health sensor row: name, unit type, typical value.
pub(crate) type Sensor = (&'static str, &'static str, f64);

/// Static facts of an emulated model.
#[derive(Debug)]
pub(crate) struct Model {
    /// `board-name` in `/system/resource` and `/system/routerboard`.
    pub(crate) board_name: &'static str,
    /// `model` in `/system/routerboard`.
    pub(crate) routerboard_model: &'static str,
    pub(crate) architecture: &'static str,
    pub(crate) cpu: &'static str,
    pub(crate) cpu_count: u32,
    pub(crate) cpu_frequency: u32,
    pub(crate) total_memory: u64,
    pub(crate) total_hdd: u64,
    pub(crate) firmware_type: &'static str,
    pub(crate) factory_software: &'static str,
    /// `false` for CHR: `/system/routerboard` prints only `routerboard=false`.
    pub(crate) routerboard: bool,
    /// Has a wifi radio (`wifi1`, `/interface/wifi/...`).
    pub(crate) radios: bool,
    pub(crate) health: &'static [Sensor],
}

pub(crate) static MODELS: [Model; 4] = [
    Model {
        board_name: "RB5009UG+S+",
        routerboard_model: "RB5009UG+S+",
        architecture: "arm64",
        cpu: "ARM64",
        cpu_count: 4,
        cpu_frequency: 1400,
        total_memory: 1_073_741_824,
        total_hdd: 1_073_741_824,
        firmware_type: "70x0",
        factory_software: "7.4",
        routerboard: true,
        radios: false,
        health: &[
            ("voltage", "V", 24.1),
            ("temperature", "C", 41.0),
            ("cpu-temperature", "C", 52.0),
            ("board-temperature1", "C", 38.0),
            ("fan1-speed", "RPM", 0.0),
        ],
    },
    Model {
        board_name: "hAP ax^3",
        routerboard_model: "C53UiG+5HPaxD2HPaxD",
        architecture: "arm64",
        cpu: "ARM64",
        cpu_count: 4,
        cpu_frequency: 864,
        total_memory: 1_073_741_824,
        total_hdd: 134_217_728,
        firmware_type: "ipq6000",
        factory_software: "7.7",
        routerboard: true,
        radios: true,
        health: &[("voltage", "V", 24.3), ("temperature", "C", 47.0)],
    },
    Model {
        board_name: "CCR2004-1G-12S+2XS",
        routerboard_model: "CCR2004-1G-12S+2XS",
        architecture: "arm64",
        cpu: "ARM64",
        cpu_count: 4,
        cpu_frequency: 1700,
        total_memory: 4_294_967_296,
        total_hdd: 134_217_728,
        firmware_type: "al2",
        factory_software: "6.46.4",
        routerboard: true,
        radios: false,
        health: &[
            ("voltage", "V", 12.1),
            ("temperature", "C", 45.0),
            ("cpu-temperature", "C", 61.0),
            ("fan1-speed", "RPM", 4950.0),
            ("fan2-speed", "RPM", 4875.0),
            ("psu1-state", "", 0.0),
        ],
    },
    Model {
        board_name: "CHR",
        routerboard_model: "CHR",
        architecture: "x86_64",
        cpu: "QEMU Virtual CPU version 2.5+",
        cpu_count: 1,
        cpu_frequency: 2400,
        total_memory: 268_435_456,
        total_hdd: 94_371_840,
        firmware_type: "",
        factory_software: "7.1",
        routerboard: false,
        radios: false,
        health: &[],
    },
];

/// The model of a device, chosen from the seed: 40 % RB5009, 25 % hAP ax³, 20 % CCR2004,
/// 15 % CHR.
pub(crate) fn model_for(seed: u64, global_index: usize) -> &'static Model {
    let u = crate::config::device_unit(seed, global_index, 0x30DE1);
    let i = match u {
        x if x < 0.40 => 0,
        x if x < 0.65 => 1,
        x if x < 0.85 => 2,
        _ => 3,
    };
    &MODELS[i]
}
