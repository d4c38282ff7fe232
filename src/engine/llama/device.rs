//! Where llama.cpp runs a model: the devices this build finds on this machine, and the
//! plan for one model's layers (`gpu_layers` and `device` in `models.yaml`).

use crate::catalog::{GpuLayers, LocalModel, ModelEntry};
use crate::engine::EngineError;

/// What kind of device llama.cpp reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Cpu,
    Gpu,
    IntegratedGpu,
    /// A device that speeds the CPU backend up (BLAS, AMX); it holds no layers.
    Accelerator,
}

/// A device llama.cpp can run layers on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// ggml's index, for `LlamaModelParams::with_devices`.
    pub index: usize,
    /// `CPU`, `Vulkan0`, `CUDA0`, `Metal`.
    pub name: String,
    /// The hardware, as the driver names it.
    pub description: String,
    /// `CPU`, `Vulkan`, `CUDA`, `Metal`.
    pub backend: String,
    pub kind: DeviceKind,
    pub memory_bytes: usize,
}

impl Device {
    fn holds_layers(&self) -> bool {
        matches!(self.kind, DeviceKind::Gpu | DeviceKind::IntegratedGpu)
    }

    /// `Vulkan0 (NVIDIA GeForce RTX 4060, 8.0 GiB)`.
    pub fn label(&self) -> String {
        if self.memory_bytes == 0 || self.kind == DeviceKind::Cpu {
            format!("{} ({})", self.name, self.description)
        } else {
            format!(
                "{} ({}, {:.1} GiB)",
                self.name,
                self.description,
                self.memory_bytes as f64 / f64::from(1u32 << 30)
            )
        }
    }
}

/// The GPU backends compiled into this binary. A `dynamic-backends` build loads its
/// backends at run time, so it may find more than these.
pub fn gpu_backends_built() -> Vec<&'static str> {
    let mut built = Vec::new();
    if cfg!(feature = "metal") || cfg!(all(target_os = "macos", target_arch = "aarch64")) {
        built.push("Metal");
    }
    if cfg!(feature = "cuda") {
        built.push("CUDA");
    }
    if cfg!(feature = "vulkan") {
        built.push("Vulkan");
    }
    built
}

/// The devices llama.cpp finds, CPU included; initialises llama.cpp (and, in a
/// `dynamic-backends` build, loads its backends) on first use. Asked once per process:
/// a GPU driver can take a tenth of a second to list its devices.
pub fn devices() -> Result<&'static [Device], EngineError> {
    static DEVICES: std::sync::OnceLock<Vec<Device>> = std::sync::OnceLock::new();
    super::backend()?;
    Ok(DEVICES.get_or_init(list_devices))
}

/// Where llama.cpp will put `entry`'s layers; None for a model llama.cpp does not run.
pub fn plan_for(entry: &ModelEntry) -> Option<Result<Plan, EngineError>> {
    if !entry.runs_on_llama_cpp() {
        return None;
    }
    let local = entry.local()?;
    Some(devices().and_then(|devices| plan(local, devices)))
}

fn list_devices() -> Vec<Device> {
    llama_cpp_2::list_llama_ggml_backend_devices()
        .into_iter()
        .filter_map(|device| {
            use llama_cpp_2::LlamaBackendDeviceType as Type;
            let kind = match device.device_type {
                Type::Cpu => DeviceKind::Cpu,
                Type::Gpu => DeviceKind::Gpu,
                Type::IntegratedGpu => DeviceKind::IntegratedGpu,
                Type::Accelerator => DeviceKind::Accelerator,
                Type::Unknown => return None,
            };
            Some(Device {
                index: device.index,
                name: device.name,
                description: device.description.trim().to_string(),
                backend: device.backend,
                kind,
                memory_bytes: device.memory_total,
            })
        })
        .collect()
}

/// The widest SIMD the CPU backend uses (`AVX512`, `AVX2`, `NEON`, …), from llama.cpp's
/// system report; in a `dynamic-backends` build this is the variant it chose for this CPU.
pub fn cpu_features() -> Option<String> {
    super::backend().ok()?;
    // SAFETY: llama.cpp returns a static NUL-terminated string.
    let report = unsafe {
        let text = llama_cpp_sys_2::llama_print_system_info();
        (!text.is_null()).then(|| {
            std::ffi::CStr::from_ptr(text)
                .to_string_lossy()
                .into_owned()
        })
    }?;
    widest_simd(&report).map(str::to_string)
}

/// The widest instruction set a system report (`CPU : SSE3 = 1 | AVX2 = 1 | …`) says is on.
fn widest_simd(report: &str) -> Option<&'static str> {
    const WIDEST_FIRST: &[&str] = &["AVX512", "AVX2", "AVX", "SVE", "NEON", "SSE3"];
    let on: Vec<&str> = report
        .split('|')
        .filter_map(|part| {
            let (name, value) = part.rsplit_once('=')?;
            let name = name.rsplit(':').next()?.trim();
            (value.trim() == "1").then_some(name)
        })
        .collect();
    WIDEST_FIRST.iter().copied().find(|simd| on.contains(simd))
}

/// How one model's layers are placed, decided before it loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// llama.cpp's `n_gpu_layers` (0: the CPU only).
    pub gpu_layers: u32,
    /// The one device asked for by name; None lets llama.cpp use every GPU it found.
    pub only_device: Option<usize>,
    /// The GPUs that will hold layers (empty: the CPU runs everything).
    pub gpus: Vec<Device>,
    /// Why a model that asked for a GPU runs on the CPU.
    pub note: Option<String>,
}

impl Plan {
    /// The model's layers all stay on the CPU.
    pub fn on_cpu(&self) -> bool {
        self.gpus.is_empty()
    }
}

/// Where `local`'s layers go among `devices`: the named device, else the discrete GPUs,
/// else the integrated ones (llama.cpp's own preference), else the CPU.
pub fn plan(local: &LocalModel, devices: &[Device]) -> Result<Plan, EngineError> {
    let asked = local.gpu_layers;
    let layers = asked.unwrap_or_default();
    let cpu = |note: Option<String>| Plan {
        gpu_layers: 0,
        only_device: None,
        gpus: Vec::new(),
        note,
    };
    let gpus: Vec<Device> = match &local.device {
        Some(name) => {
            let Some(device) = devices
                .iter()
                .find(|d| d.name.eq_ignore_ascii_case(name.trim()))
            else {
                return Err(EngineError::Load(unknown_device(name, devices)));
            };
            if !device.holds_layers() {
                return Ok(cpu(None));
            }
            vec![device.clone()]
        }
        None => {
            let discrete: Vec<Device> = devices
                .iter()
                .filter(|d| d.kind == DeviceKind::Gpu)
                .cloned()
                .collect();
            if discrete.is_empty() {
                devices
                    .iter()
                    .filter(|d| d.kind == DeviceKind::IntegratedGpu)
                    .cloned()
                    .collect()
            } else {
                discrete
            }
        }
    };
    if !layers.offloads() {
        return Ok(cpu(None));
    }
    if gpus.is_empty() {
        // Only a model that asked for a GPU in so many words hears that it got none.
        return Ok(cpu(asked.map(no_gpu_note)));
    }
    Ok(Plan {
        gpu_layers: layers.llama_count(),
        only_device: local.device.as_ref().map(|_| gpus[0].index),
        gpus,
        note: None,
    })
}

fn no_gpu_note(layers: GpuLayers) -> String {
    let built = gpu_backends_built();
    let why = if built.is_empty() && !cfg!(feature = "dynamic-backends") {
        "this promptlab was built without GPU support (build it with `--features metal`, `cuda` or `vulkan`: see the GPU chapter of the guide)".to_string()
    } else if built.is_empty() {
        "llama.cpp loaded no GPU backend next to the binary".to_string()
    } else {
        format!(
            "llama.cpp's {} backend found no GPU (check the driver)",
            built.join(" and ")
        )
    };
    format!("asks for `gpu_layers: {layers}`, but {why}: it runs on the CPU")
}

fn unknown_device(name: &str, devices: &[Device]) -> String {
    let known: Vec<String> = devices.iter().map(Device::label).collect();
    let hint = if gpu_backends_built().is_empty() && !cfg!(feature = "dynamic-backends") {
        "; this promptlab was built without GPU support (build it with `--features metal`, `cuda` or `vulkan`)"
    } else {
        ""
    };
    format!(
        "asks for `device: {name}`, which llama.cpp does not find; it finds: {}{hint}",
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    )
}

/// Where `entry` will run, in a table cell: `CPU (AVX2)`, `Vulkan0: all 30 layers`, or
/// the error that stops it loading (a device that does not exist). None for a model
/// llama.cpp does not run.
pub fn planned_placement(
    entry: &ModelEntry,
    model_layers: Option<u64>,
) -> Option<Result<String, EngineError>> {
    let plan = match plan_for(entry)? {
        Ok(plan) => plan,
        Err(err) => return Some(Err(err)),
    };
    if plan.on_cpu() {
        let cpu = placement_text(&plan, 0, cpu_features().as_deref());
        return Some(Ok(match plan.note {
            Some(_) => format!("{cpu}, no GPU"),
            None => cpu,
        }));
    }
    let names: Vec<&str> = plan.gpus.iter().map(|d| d.name.as_str()).collect();
    let layers = match model_layers.map(|n| u32::try_from(n).unwrap_or(u32::MAX)) {
        Some(n) => layers_text(plan.gpu_layers, n),
        None => format!("{} layers", GpuLayers::Count(plan.gpu_layers)),
    };
    Some(Ok(format!("{}: {layers}", names.join(" + "))))
}

/// What in a plan changes a model's outputs, for cache keys: the CPU's instruction set
/// on the CPU (`cpu-AVX2`), else the GPUs and how many layers they hold.
pub fn cache_identity(plan: &Plan) -> String {
    if plan.on_cpu() {
        return format!("cpu-{}", cpu_features().unwrap_or_else(|| "?".into()));
    }
    let names: Vec<String> = plan
        .gpus
        .iter()
        .map(|d| format!("{} {}", d.name, d.description))
        .collect();
    format!("{}:{}", names.join("+"), plan.gpu_layers)
}

/// Where a loaded model runs, for `models list`, progress lines and the TUI:
/// `CPU (AVX2)` or `Vulkan0 (…): all 30 layers`.
pub fn placement_text(plan: &Plan, model_layers: u32, cpu_features: Option<&str>) -> String {
    if plan.on_cpu() {
        return match cpu_features {
            Some(simd) => format!("CPU ({simd})"),
            None => "CPU".to_string(),
        };
    }
    let names: Vec<String> = plan.gpus.iter().map(Device::label).collect();
    let mut layers = layers_text(plan.gpu_layers, model_layers);
    if plan.gpu_layers <= model_layers {
        layers.push_str(" (the rest on the CPU)");
    }
    format!("{}: {layers}", names.join(" + "))
}

/// `all 30 layers` or `12 of 30 layers`. llama.cpp counts the output layer as one more:
/// n_layer + 1 puts everything on the GPU.
fn layers_text(gpu_layers: u32, model_layers: u32) -> String {
    if gpu_layers > model_layers {
        format!("all {model_layers} layers")
    } else {
        format!("{gpu_layers} of {model_layers} layers")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(index: usize, name: &str, kind: DeviceKind) -> Device {
        Device {
            index,
            name: name.to_string(),
            description: format!("{name} hardware"),
            backend: name.trim_end_matches(char::is_numeric).to_string(),
            kind,
            memory_bytes: if kind == DeviceKind::Cpu { 0 } else { 8 << 30 },
        }
    }

    fn local(gpu_layers: Option<GpuLayers>, device: Option<&str>) -> LocalModel {
        LocalModel {
            gpu_layers,
            device: device.map(str::to_string),
            ..LocalModel::default()
        }
    }

    #[test]
    fn a_cpu_only_machine_runs_on_the_cpu_and_says_so_only_when_asked() {
        let cpu_only = [device(0, "CPU", DeviceKind::Cpu)];
        let plan = plan(&local(None, None), &cpu_only).unwrap();
        assert!(plan.on_cpu() && plan.gpu_layers == 0 && plan.note.is_none());
        let asked = super::plan(&local(Some(GpuLayers::All), None), &cpu_only).unwrap();
        assert!(asked.on_cpu());
        let note = asked.note.unwrap();
        assert!(
            note.contains("gpu_layers: all") && note.contains("runs on the CPU"),
            "{note}"
        );
    }

    #[test]
    fn discrete_gpus_come_before_integrated_ones() {
        let devices = [
            device(0, "CPU", DeviceKind::Cpu),
            device(1, "Vulkan0", DeviceKind::IntegratedGpu),
            device(2, "Vulkan1", DeviceKind::Gpu),
        ];
        let plan = plan(&local(None, None), &devices).unwrap();
        assert_eq!(plan.gpus.len(), 1);
        assert_eq!(plan.gpus[0].name, "Vulkan1");
        assert_eq!(plan.only_device, None);
        assert_eq!(plan.gpu_layers, GpuLayers::All.llama_count());
        let integrated = super::plan(&local(None, None), &devices[..2]).unwrap();
        assert_eq!(integrated.gpus[0].name, "Vulkan0");
    }

    #[test]
    fn a_named_device_is_the_only_one_and_an_unknown_name_is_an_error() {
        let devices = [
            device(0, "CPU", DeviceKind::Cpu),
            device(1, "CUDA0", DeviceKind::Gpu),
            device(2, "CUDA1", DeviceKind::Gpu),
        ];
        let plan = plan(&local(Some(GpuLayers::Count(12)), Some("cuda1")), &devices).unwrap();
        assert_eq!(plan.only_device, Some(2));
        assert_eq!(plan.gpu_layers, 12);
        let cpu = super::plan(&local(None, Some("CPU")), &devices).unwrap();
        assert!(cpu.on_cpu() && cpu.note.is_none());
        let err = super::plan(&local(None, Some("Metal")), &devices)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`device: Metal`") && err.contains("CUDA1 (CUDA1 hardware, 8.0 GiB)"),
            "{err}"
        );
    }

    #[test]
    fn none_or_zero_layers_keep_a_gpu_machine_on_the_cpu() {
        let devices = [
            device(0, "CPU", DeviceKind::Cpu),
            device(1, "Metal", DeviceKind::Gpu),
        ];
        for layers in [GpuLayers::None, GpuLayers::Count(0)] {
            let plan = plan(&local(Some(layers), None), &devices).unwrap();
            assert!(plan.on_cpu() && plan.note.is_none(), "{layers}");
        }
    }

    #[test]
    fn placement_reads_as_a_user_would_say_it() {
        let devices = [
            device(0, "CPU", DeviceKind::Cpu),
            device(1, "Vulkan0", DeviceKind::Gpu),
        ];
        let all = plan(&local(None, None), &devices).unwrap();
        assert_eq!(
            placement_text(&all, 30, None),
            "Vulkan0 (Vulkan0 hardware, 8.0 GiB): all 30 layers"
        );
        let some = plan(&local(Some(GpuLayers::Count(10)), None), &devices).unwrap();
        assert_eq!(
            placement_text(&some, 30, None),
            "Vulkan0 (Vulkan0 hardware, 8.0 GiB): 10 of 30 layers (the rest on the CPU)"
        );
        let cpu = plan(&local(Some(GpuLayers::None), None), &devices).unwrap();
        assert_eq!(placement_text(&cpu, 30, Some("AVX2")), "CPU (AVX2)");
    }

    #[test]
    fn cached_outputs_are_keyed_by_the_device_that_made_them() {
        let devices = [
            device(0, "CPU", DeviceKind::Cpu),
            device(1, "CUDA0", DeviceKind::Gpu),
        ];
        let cpu = plan(&local(Some(GpuLayers::None), None), &devices).unwrap();
        let all = plan(&local(None, None), &devices).unwrap();
        let some = plan(&local(Some(GpuLayers::Count(8)), None), &devices).unwrap();
        let keys = [
            cache_identity(&cpu),
            cache_identity(&all),
            cache_identity(&some),
        ];
        // This build's CPU kernels: AVX2 on x86-64 (or whatever llama.cpp reports).
        assert!(keys[0].starts_with("cpu-"), "{keys:?}");
        assert!(keys[1].starts_with("CUDA0 CUDA0 hardware:"), "{keys:?}");
        assert_ne!(keys[1], keys[2]);
        assert_ne!(keys[0], keys[1]);
    }

    #[test]
    fn the_widest_simd_is_read_from_the_system_report() {
        let report = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 0 | OPENMP = 1 | REPACK = 0 | ";
        assert_eq!(widest_simd(report), Some("AVX2"));
        assert_eq!(widest_simd("CPU : NEON = 1 | ARM_FMA = 1 |"), Some("NEON"));
        assert_eq!(widest_simd("nothing here"), None);
    }
}
