//! setup.msi's pages as data, in the Blackfin coLinux kit manual's order: welcome;
//! license (accepted to go on); the kernel-driver warning (coLinux only); install
//! folder; guest RAM and image sizes; network (port forwards, TAP and its subnet, the
//! serial port); start-menu folder; tasks (the machine service, the PuTTY session);
//! ready (the plan's summary); then progress, and finish, cancelled or failed.
//!
//! Every page has Back (but the first), Next and Cancel. Cancel asks first (`UiCancel`,
//! as Windows Installer's own packages do): Yes ends setup (exit 1602; nothing is
//! changed before Install), No keeps the page. A Next that leaves a page of answers
//! first runs the DLL custom action `ColinuxSetupUi`, which runs `colinux-setup msi ui`
//! ([`super::answers`]) on every answer so far: a refusal opens `UiRefused` with the
//! plan's words and keeps the page; an accepted page moves on with the values and texts
//! the program computed for the next ones (the recommended sizes, the free subnet, the
//! free space, the summary).
//!
//! The layout follows Windows Installer's usual 370 × 270 dialog units: a banner with
//! the title and a line of description, the page's content, and the buttons along the
//! bottom. Texts a property fills (`[UI_ERROR]`, `[UI_SUMMARY]`, ...) carry NoPrefix so
//! an `&` in them is shown, not taken for an accelerator.

/// The DLL custom action the pages run (type 1: a DLL in the Binary table).
pub const CUSTOM_ACTION: &str = "ColinuxSetupUi";
/// The Binary table's row of the DLL (installer-ca's colinux_setup_ca.dll).
pub const CA_BINARY: &str = "ColinuxSetupCa";
/// The Binary table's row of colinux-setup.exe, which the DLL runs (not installed yet
/// when the dialogs run).
pub const EXE_BINARY: &str = "ColinuxSetupExe";
/// The prefix of the Binary table's rows of the program's assets (`ColinuxSetupAsset.busybox`),
/// which the DLL writes into `assets\` beside the exe's `bin\`.
pub const ASSET_BINARY: &str = "ColinuxSetupAsset.";
/// The text styles: the default font of every control, and the banner's title.
pub const NORMAL_STYLE: &str = "ColinuxNormal";
const TITLE_STYLE: &str = "ColinuxTitle";

/// Control attributes (msidbControlAttributes*).
pub(super) const VISIBLE: i32 = 0x1;
pub(super) const ENABLED: i32 = 0x2;
pub(super) const SUNKEN: i32 = 0x4;
pub(super) const TRANSPARENT: i32 = 0x1_0000;
pub(super) const NO_PREFIX: i32 = 0x2_0000;
const PROGRESS95: i32 = 0x1_0000;
/// A text: drawn enabled (a disabled one is grey), on the dialog's background, an `&`
/// shown as it is.
const TEXT: i32 = VISIBLE | ENABLED | TRANSPARENT | NO_PREFIX;
/// A dialog that is visible, modal and follows the disk-space check (msidbDialogAttributes*).
const DIALOG_MODAL: i32 = 0x1 | 0x2 | 0x20;
/// The progress dialog stays up while the install runs (visible, modeless, kept).
const DIALOG_MODELESS: i32 = 0x1 | 0x10;

/// Width and height of every page.
pub const WIDTH: i32 = 370;
pub const HEIGHT: i32 = 270;

/// One control of a dialog (a row of the Control table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Control {
    pub name: &'static str,
    pub kind: &'static str,
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
    pub attributes: i32,
    pub property: Option<&'static str>,
    pub text: Option<String>,
    /// The next control in tab order (set by [`Dialog::chain`]).
    pub next: Option<&'static str>,
}

impl Control {
    fn new(name: &'static str, kind: &'static str, rect: (i32, i32, i32, i32)) -> Control {
        Control {
            name,
            kind,
            x: rect.0,
            y: rect.1,
            width: rect.2,
            height: rect.3,
            attributes: VISIBLE | ENABLED,
            property: None,
            text: None,
            next: None,
        }
    }

    fn text(mut self, t: impl Into<String>) -> Control {
        self.text = Some(t.into());
        self
    }

    fn property(mut self, p: &'static str) -> Control {
        self.property = Some(p);
        self
    }

    fn attributes(mut self, a: i32) -> Control {
        self.attributes = a;
        self
    }

    /// Whether the control takes the keyboard focus (is in the tab order).
    fn focusable(&self) -> bool {
        matches!(
            self.kind,
            "PushButton" | "Edit" | "CheckBox" | "ScrollableText" | "PathEdit"
        )
    }
}

/// One dialog (a row of the Dialog table) and its controls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dialog {
    pub name: &'static str,
    pub width: i32,
    pub height: i32,
    pub attributes: i32,
    pub title: &'static str,
    pub controls: Vec<Control>,
    /// The control with the focus when the dialog opens.
    pub first: &'static str,
    /// The button Enter presses.
    pub default: &'static str,
    /// The button Esc presses.
    pub cancel: &'static str,
}

impl Dialog {
    /// Links the focusable controls in the order they were added, the last back to
    /// the first (Windows Installer's tab order).
    fn chain(mut self) -> Dialog {
        let order: Vec<&'static str> = self
            .controls
            .iter()
            .filter(|c| c.focusable())
            .map(|c| c.name)
            .collect();
        for c in &mut self.controls {
            if let Some(i) = order.iter().position(|n| *n == c.name) {
                c.next = Some(order[(i + 1) % order.len()]);
            }
        }
        self
    }
}

/// A ControlEvent row: what a button does, in `order`, when `condition` holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub dialog: &'static str,
    pub control: &'static str,
    pub event: String,
    pub argument: String,
    pub condition: String,
    pub order: i32,
}

/// A ControlCondition row: `action` (Enable, Disable, Show, Hide) when `condition`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub dialog: &'static str,
    pub control: &'static str,
    pub action: &'static str,
    pub condition: &'static str,
}

/// An EventMapping row: the control's `attribute` follows Windows Installer's `event`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub dialog: &'static str,
    pub control: &'static str,
    pub event: &'static str,
    pub attribute: &'static str,
}

/// A TextStyle row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextStyle {
    pub name: &'static str,
    pub face: &'static str,
    pub size: i32,
    pub bold: bool,
}

/// Everything the pages add to the MSI.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ui {
    pub dialogs: Vec<Dialog>,
    pub events: Vec<Event>,
    pub conditions: Vec<Condition>,
    pub mappings: Vec<Mapping>,
    pub styles: Vec<TextStyle>,
    /// CheckBox rows: (property, the value it has when checked).
    pub checkboxes: Vec<(&'static str, &'static str)>,
    /// Property rows: (property, value).
    pub properties: Vec<(&'static str, String)>,
    /// InstallUISequence rows: (action, condition, sequence).
    pub ui_sequence: Vec<(&'static str, &'static str, i32)>,
    /// ActionText rows: (action, what the progress page says while it runs).
    pub action_texts: Vec<(&'static str, &'static str)>,
}

/// A page of the walk: its dialog, and the condition under which it is shown.
struct Step {
    dialog: &'static str,
    shown: &'static str,
    /// Leaving it forward runs the check (a page of answers).
    checked: bool,
}

/// The pages a user walks through, in order.
const WALK: &[Step] = &[
    Step {
        dialog: "UiWelcome",
        shown: "",
        checked: true,
    },
    Step {
        dialog: "UiLicense",
        shown: "",
        checked: false,
    },
    Step {
        dialog: "UiDriver",
        shown: "UI_COLINUX = \"1\"",
        checked: false,
    },
    Step {
        dialog: "UiFolder",
        shown: "",
        checked: true,
    },
    Step {
        dialog: "UiSizes",
        shown: "",
        checked: true,
    },
    Step {
        dialog: "UiNetwork",
        shown: "",
        checked: true,
    },
    Step {
        dialog: "UiStartMenu",
        shown: "",
        checked: true,
    },
    Step {
        dialog: "UiTasks",
        shown: "",
        checked: true,
    },
    Step {
        dialog: "UiReady",
        shown: "",
        checked: false,
    },
];

/// The page names `msi ui --page` is given: the dialog without `Ui`, in lower case.
pub fn page_name(dialog: &str) -> String {
    dialog
        .strip_prefix("Ui")
        .unwrap_or(dialog)
        .to_ascii_lowercase()
}

/// The properties the DLL passes to `msi ui`, `;`-separated (the `UI_PROPERTIES`
/// property): the public answer keys, so every answer the dialogs or the command line
/// gave is checked together.
pub fn passed_properties() -> String {
    crate::answer_keys::msi_properties()
        .into_iter()
        .filter(|p| !matches!(*p, "PURGE" | "USERSID"))
        .chain([super::answers::FILLED])
        .collect::<Vec<_>>()
        .join(";")
}

fn banner(title: &str, description: &str) -> Vec<Control> {
    vec![
        Control::new("BannerTitle", "Text", (15, 6, 340, 15))
            .text(format!("{{\\{TITLE_STYLE}}}{title}"))
            .attributes(TEXT),
        Control::new("BannerText", "Text", (15, 23, 340, 18))
            .text(description)
            .attributes(TEXT),
        Control::new("BannerLine", "Line", (0, 44, WIDTH, 0)).attributes(VISIBLE),
    ]
}

fn buttons(back: bool, next_text: &str) -> Vec<Control> {
    let mut back_button = Control::new("Back", "PushButton", (180, 243, 56, 17)).text("< &Back");
    if !back {
        back_button = back_button.attributes(VISIBLE);
    }
    vec![
        Control::new("BottomLine", "Line", (0, 234, WIDTH, 0)).attributes(VISIBLE),
        Control::new("Next", "PushButton", (236, 243, 56, 17)).text(next_text),
        Control::new("Cancel", "PushButton", (304, 243, 56, 17)).text("Cancel"),
        back_button,
    ]
}

/// A label and its edit field, on row `row` of the content area.
fn field(
    row: i32,
    label_name: &'static str,
    name: &'static str,
    label: &str,
    property: &'static str,
) -> [Control; 2] {
    let y = 56 + row * 24;
    [
        Control::new(label_name, "Text", (15, y + 2, 130, 13))
            .text(label)
            .attributes(TEXT),
        Control::new(name, "Edit", (150, y, 205, 18))
            .property(property)
            .attributes(VISIBLE | ENABLED | SUNKEN),
    ]
}

/// A text a property fills, in the content area from `y` to the bottom line.
fn info(name: &'static str, y: i32, text: &str) -> Control {
    Control::new(name, "Text", (15, y, 340, 228 - y))
        .text(text)
        .attributes(TEXT)
}

/// A text of several paragraphs as one Text control each (a table's value cannot hold
/// a line end), their lines joined, stacked from `y` with a height for their length.
fn paragraphs(y: i32, text: &str) -> Vec<Control> {
    const NAMES: [&str; 6] = ["Para1", "Para2", "Para3", "Para4", "Para5", "Para6"];
    let mut out = Vec::new();
    let mut y = y;
    for (name, para) in NAMES.iter().zip(text.split("\n\n")) {
        let joined = para.split_whitespace().collect::<Vec<_>>().join(" ");
        // About 60 characters fit on a line of 340 units in Tahoma 8; 11 units a line.
        let lines = i32::try_from(joined.len().div_ceil(60)).unwrap_or(8).max(1);
        let height = lines * 11 + 2;
        out.push(
            Control::new(name, "Text", (15, y, 340, height))
                .text(joined)
                .attributes(TEXT),
        );
        y += height + 6;
    }
    out
}

fn page(
    name: &'static str,
    title: &str,
    description: &str,
    content: Vec<Control>,
    back: bool,
    next_text: &str,
) -> Dialog {
    let first = content
        .iter()
        .find(|c| c.focusable())
        .map_or("Next", |c| c.name);
    let mut controls = banner(title, description);
    controls.extend(content);
    controls.extend(buttons(back, next_text));
    Dialog {
        name,
        width: WIDTH,
        height: HEIGHT,
        attributes: DIALOG_MODAL,
        title: "[ProductName]",
        controls,
        first,
        default: "Next",
        cancel: "Cancel",
    }
    .chain()
}

/// The license as the ScrollableText control takes it: RTF.
fn license_rtf() -> String {
    let mut s = String::from("{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 Courier New;}}\\fs16 ");
    for line in super::super::pages::LICENSE.lines() {
        for ch in line.chars() {
            match ch {
                '\\' | '{' | '}' => {
                    s.push('\\');
                    s.push(ch);
                }
                '\t' => s.push_str("\\tab "),
                c if c.is_ascii() && !c.is_ascii_control() => s.push(c),
                c => {
                    // RTF's \uN: a signed 16-bit number, then a fallback character.
                    let n = u32::from(c) as i32;
                    let n = if n > 32767 { n - 65536 } else { n };
                    s.push_str(&format!("\\u{n}?"));
                }
            }
        }
        s.push_str("\\par ");
    }
    s.push('}');
    s
}

/// The dialogs' pages, events and the rows around them.
pub fn ui() -> Ui {
    let mut ui = Ui::default();
    let dialogs = vec![
        page(
            "UiWelcome",
            "Welcome to the coLinux setup",
            "A Linux machine beside Windows, ready after one boot.",
            vec![info("Body", 52, "[UI_WELCOME][UI_ERROR]")],
            false,
            "&Next >",
        ),
        page(
            "UiLicense",
            "License agreement",
            "coLinux, its Linux kernel and colinux-setup are free software under the GNU GPL, version 2.",
            vec![
                Control::new("License", "ScrollableText", (15, 52, 340, 150))
                    .text(license_rtf())
                    .attributes(VISIBLE | ENABLED | SUNKEN),
                Control::new("Accept", "CheckBox", (15, 208, 340, 15))
                    .property("UI_LICENSE")
                    .text("I &accept the terms of the license"),
            ],
            true,
            "&Next >",
        ),
        page(
            "UiDriver",
            "A kernel-level component",
            "Please read this before you go on.",
            paragraphs(52, super::super::pages::KERNEL_WARNING),
            true,
            "&Next >",
        ),
        page(
            "UiFolder",
            "Install folder",
            "The machine's folder: its config.txt, its disk images and the program.",
            {
                let mut v = Vec::from(field(
                    0,
                    "FolderLabel",
                    "Folder",
                    "Install &folder:",
                    "INSTALLDIR",
                ));
                v.push(info("Body", 86, "[UI_FOLDER]"));
                v
            },
            true,
            "&Next >",
        ),
        page(
            "UiSizes",
            "Guest RAM and image sizes",
            "Recommended for this computer; change them if you like (in MB).",
            {
                let mut v = Vec::new();
                v.extend(field(0, "RamLabel", "Ram", "Guest &RAM (MB):", "RAMMB"));
                v.extend(field(1, "RootLabel", "Root", "R&oot image (MB):", "ROOTMB"));
                v.extend(field(2, "HomeLabel", "Home", "&Home image (MB):", "HOMEMB"));
                v.extend(field(3, "SwapLabel", "Swap", "&Swap image (MB):", "SWAPMB"));
                v.push(info("Body", 154, "[UI_SIZES]"));
                v
            },
            true,
            "&Next >",
        ),
        page(
            "UiNetwork",
            "Network and serial port",
            "How the machine reaches this computer and the network.",
            {
                let mut v = Vec::new();
                v.extend(field(
                    0,
                    "SlirpLabel",
                    "Slirp",
                    "&Port forwards (slirp):",
                    "SLIRP",
                ));
                v.extend(field(1, "TapLabel", "Tap", "&TAP adapter:", "TAPNAME"));
                v.extend(field(2, "SubnetLabel", "Subnet", "TAP s&ubnet:", "SUBNET"));
                v.extend(field(3, "SerialLabel", "Serial", "S&erial port:", "SERIAL"));
                v.push(info("Body", 154, "[UI_NETWORK]"));
                v
            },
            true,
            "&Next >",
        ),
        page(
            "UiStartMenu",
            "Start menu folder",
            "Where the machine's shortcuts go in the start menu.",
            {
                let mut v = Vec::from(field(
                    0,
                    "MenuLabel",
                    "Menu",
                    "Start menu &folder:",
                    "STARTMENU",
                ));
                v.push(info(
                    "Body",
                    86,
                    "Shortcuts to start the machine, its config.txt and the install logs.",
                ));
                v
            },
            true,
            "&Next >",
        ),
        page(
            "UiTasks",
            "Extra tasks",
            "What else setup does for the machine.",
            vec![
                Control::new("Service", "CheckBox", (15, 56, 340, 15))
                    .property("SERVICE")
                    .text("Run the machine as a Windows &service (it starts with Windows)"),
                Control::new("Putty", "CheckBox", (15, 80, 340, 15))
                    .property("PUTTYSESSION")
                    .text(
                        "A &PuTTY session for ssh to the machine (needs a port forward to port 22)",
                    ),
            ],
            true,
            "&Next >",
        ),
        page(
            "UiReady",
            "Ready to install",
            "Setup makes this machine when you choose Install; Back changes it.",
            // msi ui fits the summary to this text (a multi-line field would scroll,
            // but Wine draws an MSI Edit on one line).
            vec![info("Body", 52, "[UI_SUMMARY]")],
            true,
            "&Install",
        ),
    ];
    ui.dialogs = dialogs;
    ui.dialogs.push(progress());
    ui.dialogs.extend(endings());
    ui.dialogs.push(refused());
    ui.dialogs.push(cancel_question());
    walk_events(&mut ui);
    ui.conditions = vec![
        Condition {
            dialog: "UiLicense",
            control: "Next",
            action: "Disable",
            condition: "UI_LICENSE <> \"1\"",
        },
        Condition {
            dialog: "UiLicense",
            control: "Next",
            action: "Enable",
            condition: "UI_LICENSE = \"1\"",
        },
        Condition {
            dialog: "UiNetwork",
            control: "Serial",
            action: "Disable",
            condition: "UI_COLINUX <> \"1\"",
        },
        Condition {
            dialog: "UiNetwork",
            control: "Serial",
            action: "Enable",
            condition: "UI_COLINUX = \"1\"",
        },
    ];
    ui.mappings = vec![
        Mapping {
            dialog: "UiProgress",
            control: "ActionText",
            event: "ActionText",
            attribute: "Text",
        },
        Mapping {
            dialog: "UiProgress",
            control: "Bar",
            event: "SetProgress",
            attribute: "Progress",
        },
    ];
    ui.styles = vec![
        TextStyle {
            name: NORMAL_STYLE,
            face: "Tahoma",
            size: 8,
            bold: false,
        },
        TextStyle {
            name: TITLE_STYLE,
            face: "Tahoma",
            size: 9,
            bold: true,
        },
    ];
    ui.checkboxes = vec![("UI_LICENSE", "1"), ("SERVICE", "1"), ("PUTTYSESSION", "1")];
    ui.properties = vec![
        ("DefaultUIFont", NORMAL_STYLE.to_owned()),
        ("UI_PAGE", "start".to_owned()),
        ("UI_PROPERTIES", passed_properties()),
    ];
    ui.ui_sequence = vec![
        (CUSTOM_ACTION, "NOT Installed", 1050),
        ("UiWelcome", "NOT Installed", 1100),
        ("UiProgress", "", 1280),
        ("UiFinish", "", -1),
        ("UiExit", "", -2),
        ("UiFatal", "", -3),
    ];
    ui.action_texts = vec![
        (
            "Provision",
            "Building the machine: its images, config.txt, the host's parts and its first boot",
        ),
        ("ProvisionRollback", "Undoing what this install made"),
        (
            "Unprovision",
            "Removing the machine (its images are kept unless PURGE=1)",
        ),
    ];
    ui
}

/// Next, Back and Cancel of every page of the walk.
fn walk_events(ui: &mut Ui) {
    let mut ev = |dialog: &'static str,
                  control: &'static str,
                  event: &str,
                  arg: &str,
                  cond: &str,
                  order: i32| {
        ui.events.push(Event {
            dialog,
            control,
            event: event.to_owned(),
            argument: arg.to_owned(),
            condition: if cond.is_empty() {
                "1".to_owned()
            } else {
                cond.to_owned()
            },
            order,
        });
    };
    let both = |a: &str, b: &str| match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("({a}) AND ({b})"),
    };
    let not = |c: &str| {
        if c.is_empty() {
            "0".to_owned()
        } else {
            format!("NOT ({c})")
        }
    };
    for (i, step) in WALK.iter().enumerate() {
        let d = step.dialog;
        ev(d, "Cancel", "SpawnDialog", "UiCancel", "", 1);
        // Forward: the next page shown, skipping one whose condition does not hold
        // (only the driver page has one, and its neighbours have none).
        let mut order = 1;
        if step.checked {
            ev(d, "Next", "[UI_PAGE]", &page_name(d), "", order);
            ev(d, "Next", "DoAction", CUSTOM_ACTION, "", order + 1);
            ev(
                d,
                "Next",
                "SpawnDialog",
                "UiRefused",
                "UI_ERROR <> \"\"",
                order + 2,
            );
            order += 3;
            if d == "UiFolder" {
                ev(
                    d,
                    "Next",
                    "SetTargetPath",
                    "INSTALLDIR",
                    "UI_ERROR = \"\"",
                    order,
                );
                order += 1;
            }
        }
        let ok = if step.checked { "UI_ERROR = \"\"" } else { "" };
        if d == "UiReady" {
            ev(d, "Next", "EndDialog", "Return", "", order);
        } else if let Some(next) = WALK.get(i + 1) {
            ev(
                d,
                "Next",
                "NewDialog",
                next.dialog,
                &both(ok, next.shown),
                order,
            );
            if !next.shown.is_empty()
                && let Some(after) = WALK.get(i + 2)
            {
                ev(
                    d,
                    "Next",
                    "NewDialog",
                    after.dialog,
                    &both(ok, &not(next.shown)),
                    order + 1,
                );
            }
        }
        if i > 0 {
            let prev = &WALK[i - 1];
            ev(d, "Back", "NewDialog", prev.dialog, prev.shown, 1);
            if !prev.shown.is_empty() {
                ev(
                    d,
                    "Back",
                    "NewDialog",
                    WALK[i - 2].dialog,
                    &not(prev.shown),
                    2,
                );
            }
        }
    }
    for d in ["UiFinish", "UiExit", "UiFatal"] {
        ev(d, "Finish", "EndDialog", "Return", "", 1);
    }
    ev("UiRefused", "OK", "EndDialog", "Return", "", 1);
    // Yes: the whole sequence ends as cancelled (the UiExit page); No: back to the page.
    ev("UiCancel", "Yes", "EndDialog", "Exit", "", 1);
    ev("UiCancel", "No", "EndDialog", "Return", "", 1);
    ev("UiProgress", "Cancel", "EndDialog", "Exit", "", 1);
}

fn progress() -> Dialog {
    let mut controls = banner(
        "Installing the machine",
        "This takes a minute or more: the first boot runs the machine once.",
    );
    controls.extend([
        Control::new("ActionText", "Text", (15, 60, 340, 30)).attributes(TEXT),
        Control::new("Bar", "ProgressBar", (15, 95, 340, 12))
            .attributes(VISIBLE | PROGRESS95)
            .text("Progress"),
        Control::new("BottomLine", "Line", (0, 234, WIDTH, 0)).attributes(VISIBLE),
        Control::new("Cancel", "PushButton", (304, 243, 56, 17)).text("Cancel"),
    ]);
    Dialog {
        name: "UiProgress",
        width: WIDTH,
        height: HEIGHT,
        attributes: DIALOG_MODELESS,
        title: "[ProductName]",
        controls,
        first: "Cancel",
        default: "Cancel",
        cancel: "Cancel",
    }
    .chain()
}

/// The last page: installed, cancelled or failed.
fn endings() -> Vec<Dialog> {
    let end = |name: &'static str, title: &str, body: &str| {
        let mut controls = banner(title, "");
        controls.extend(paragraphs(52, body));
        controls.push(Control::new("BottomLine", "Line", (0, 234, WIDTH, 0)).attributes(VISIBLE));
        controls.push(Control::new("Finish", "PushButton", (304, 243, 56, 17)).text("&Finish"));
        Dialog {
            name,
            width: WIDTH,
            height: HEIGHT,
            attributes: DIALOG_MODAL,
            title: "[ProductName]",
            controls,
            first: "Finish",
            default: "Finish",
            cancel: "Finish",
        }
        .chain()
    };
    vec![
        end(
            "UiFinish",
            "The machine is installed",
            "Start it from the start menu (Start coLinux), or in a command prompt:\n\n\
             \"[INSTALLDIR]bin\\colinux-setup.exe\" boot --prefix \"[INSTALLDIR].\"\n\n\
             Its folder: [INSTALLDIR]\n\n\
             The install's log is in [CommonAppDataFolder]colinux-setup\\logs (and beside msiexec's own log when one was asked for with /l).",
        ),
        end(
            "UiExit",
            "Setup was cancelled",
            "Nothing was changed on this computer. Run setup again to install the machine.",
        ),
        end(
            "UiFatal",
            "Setup failed",
            "Everything this setup did was undone, and images that were there before are kept. Why it failed is in the install's log in [CommonAppDataFolder]colinux-setup\\logs.",
        ),
    ]
}

/// The question Cancel asks on a page; No (the default, and Esc) keeps the page.
fn cancel_question() -> Dialog {
    let controls = vec![
        Control::new("Message", "Text", (10, 10, 240, 40))
            .text("Cancel the installation? Nothing has been changed on this computer yet.")
            .attributes(TEXT),
        Control::new("Yes", "PushButton", (72, 57, 56, 17)).text("&Yes"),
        Control::new("No", "PushButton", (132, 57, 56, 17)).text("&No"),
    ];
    Dialog {
        name: "UiCancel",
        width: 260,
        height: 85,
        attributes: DIALOG_MODAL,
        title: "[ProductName]",
        controls,
        first: "No",
        default: "No",
        cancel: "No",
    }
    .chain()
}

/// The refusal of a page's answers, in the program's words.
fn refused() -> Dialog {
    let controls = vec![
        Control::new("Message", "Text", (10, 10, 310, 105))
            .text("[UI_ERROR]")
            .attributes(TEXT),
        Control::new("OK", "PushButton", (137, 122, 56, 17)).text("OK"),
    ];
    Dialog {
        name: "UiRefused",
        width: 330,
        height: 146,
        attributes: DIALOG_MODAL,
        title: "[ProductName]",
        controls,
        first: "OK",
        default: "OK",
        cancel: "OK",
    }
    .chain()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_has_back_next_cancel_and_a_closed_tab_order() {
        let ui = ui();
        for step in WALK {
            let d = ui
                .dialogs
                .iter()
                .find(|d| d.name == step.dialog)
                .expect("the page");
            for b in ["Back", "Next", "Cancel"] {
                assert!(d.controls.iter().any(|c| c.name == b), "{}: no {b}", d.name);
            }
            // Following Control_Next from the first control comes back to it after
            // visiting every focusable control once.
            let focusable = d.controls.iter().filter(|c| c.focusable()).count();
            let mut at = d.first;
            for _ in 0..focusable {
                at = d
                    .controls
                    .iter()
                    .find(|c| c.name == at)
                    .and_then(|c| c.next)
                    .unwrap_or_else(|| panic!("{}: {at} has no next", d.name));
            }
            assert_eq!(at, d.first, "{}", d.name);
            let names: std::collections::BTreeSet<_> = d.controls.iter().map(|c| c.name).collect();
            assert_eq!(names.len(), d.controls.len(), "{}: a control twice", d.name);
        }
    }

    #[test]
    fn next_and_back_walk_the_pages_in_order_with_the_driver_page_for_colinux_only() {
        let ui = ui();
        let goes = |dialog: &str, control: &str| -> Vec<(String, String)> {
            ui.events
                .iter()
                .filter(|e| e.dialog == dialog && e.control == control && e.event == "NewDialog")
                .map(|e| (e.argument.clone(), e.condition.clone()))
                .collect()
        };
        assert_eq!(
            goes("UiLicense", "Next"),
            vec![
                ("UiDriver".to_owned(), "UI_COLINUX = \"1\"".to_owned()),
                ("UiFolder".to_owned(), "NOT (UI_COLINUX = \"1\")".to_owned())
            ]
        );
        assert_eq!(
            goes("UiFolder", "Back"),
            vec![
                ("UiDriver".to_owned(), "UI_COLINUX = \"1\"".to_owned()),
                (
                    "UiLicense".to_owned(),
                    "NOT (UI_COLINUX = \"1\")".to_owned()
                )
            ]
        );
        // A page of answers moves on only when the program accepted them.
        assert_eq!(
            goes("UiSizes", "Next"),
            vec![("UiNetwork".to_owned(), "UI_ERROR = \"\"".to_owned())]
        );
        let sizes: Vec<&str> = ui
            .events
            .iter()
            .filter(|e| e.dialog == "UiSizes" && e.control == "Next")
            .map(|e| e.event.as_str())
            .collect();
        assert_eq!(sizes, ["[UI_PAGE]", "DoAction", "SpawnDialog", "NewDialog"]);
        for step in WALK {
            assert!(
                ui.events.iter().any(|e| e.dialog == step.dialog
                    && e.control == "Cancel"
                    && e.event == "SpawnDialog"
                    && e.argument == "UiCancel"),
                "{}: Cancel does not ask",
                step.dialog
            );
        }
        // The question's Yes ends setup as cancelled; No returns to the page.
        let answer = |control: &str| {
            ui.events
                .iter()
                .filter(|e| e.dialog == "UiCancel" && e.control == control)
                .map(|e| (e.event.as_str(), e.argument.as_str()))
                .collect::<Vec<_>>()
        };
        assert_eq!(answer("Yes"), [("EndDialog", "Exit")]);
        assert_eq!(answer("No"), [("EndDialog", "Return")]);
    }

    #[test]
    fn the_fields_are_the_public_properties_a_silent_install_takes() {
        let ui = ui();
        let public = crate::answer_keys::msi_properties();
        for d in &ui.dialogs {
            for c in &d.controls {
                if let Some(p) = c.property
                    && !p.starts_with("UI_")
                {
                    assert!(
                        public.contains(&p),
                        "{}.{}: {p} is not public",
                        d.name,
                        c.name
                    );
                }
            }
        }
        for p in passed_properties().split(';') {
            assert!(
                public.contains(&p) || p == super::super::answers::FILLED,
                "{p}"
            );
        }
    }

    #[test]
    fn the_license_is_the_whole_gpl_as_rtf() {
        let rtf = license_rtf();
        assert!(rtf.starts_with("{\\rtf1") && rtf.ends_with('}'));
        assert!(rtf.contains("GNU GENERAL PUBLIC LICENSE"));
        assert!(rtf.contains("END OF TERMS AND CONDITIONS"));
        assert!(!rtf.contains(['\n', '\t']));
    }
}
