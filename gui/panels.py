"""The settings sidebar: model, scale, format, output folder, device, Advanced, run buttons.

Layout only. It shows values it is given (:meth:`SettingsPanel.apply`), reports what the user
picked (:meth:`SettingsPanel.values`, ``changed``) and what they asked for (``*_requested``),
and shows progress it is told (``set_running``, ``set_item_progress``, ...); what all that
means is the controllers' business.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .devices import DeviceChoice
from .settings import FORMATS, SCALES, GuiSettings

__all__ = ["ModelEntry", "SettingsPanel"]

_FORMAT_LABELS = {"png": "PNG (lossless)", "jpg": "JPEG", "webp": "WebP"}


@dataclass(frozen=True)
class ModelEntry:
    """One model picker row: ``name`` goes into ``Options.model``; ``max_scale`` is the
    largest scale it can produce (smaller ones are a Lanczos resize of its output).

    ``combos`` are the (native scale, denoise level) pairs the family ships (denoise None for
    families without levels); ``default_denoise`` is its plain model's level and
    ``denoise_labels`` names some levels (``-1`` -> ``conservative``).
    """

    name: str
    label: str
    description: str
    max_scale: int
    combos: tuple[tuple[int, int | None], ...] = ()
    default_denoise: int | None = None
    denoise_labels: tuple[tuple[int, str], ...] = ()

    @property
    def native_scales(self) -> tuple[int, ...]:
        return tuple(sorted({s for s, _ in self.combos})) or (self.max_scale,)

    def native_for(self, scale: int) -> int | None:
        """The native scale a target ``scale`` runs at (the smallest at or above it)."""
        above = [s for s in self.native_scales if s >= scale]
        return above[0] if above else None

    def scale_allowed(self, scale: int) -> bool:
        """Scales up to the largest; 1x only where a model works at x1 natively."""
        if scale == 1:
            return 1 in self.native_scales
        return self.native_for(scale) is not None

    def denoise_levels(self, scale: int) -> tuple[int, ...]:
        """The denoise levels offered at target ``scale`` (empty: no levels)."""
        native = self.native_for(scale)
        return tuple(sorted({d for s, d in self.combos if s == native and d is not None}))

    def denoise_text(self, level: int) -> str:
        label = dict(self.denoise_labels).get(level)
        return f"{label.capitalize()} ({level})" if label else f"Level {level}"


def _section(text: str) -> QLabel:
    label = QLabel(text.upper())
    label.setObjectName("SectionLabel")
    return label


class SettingsPanel(QFrame):
    """The left column. ``changed()`` fires on any user edit; ``start_requested()``,
    ``cancel_requested()``, ``cancel_all_requested()`` and ``browse_output_requested()`` on
    the buttons of those names."""

    changed = Signal()
    browse_output_requested = Signal()
    start_requested = Signal()
    cancel_requested = Signal()
    cancel_all_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Sidebar")
        self.setFixedWidth(316)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        # the choices scroll when the window is short; progress and buttons stay in view
        scroll = QScrollArea()
        scroll.setObjectName("SidebarScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        content = QWidget()
        content.setObjectName("SidebarContent")
        scroll.setWidget(content)
        outer.addWidget(scroll, 1)
        lay = QVBoxLayout(content)
        lay.setContentsMargins(20, 18, 20, 8)
        lay.setSpacing(6)

        brand = QHBoxLayout()
        logo = QLabel("◆")
        logo.setObjectName("Logo")
        title = QLabel("Upscaler <b>Edge</b>")
        title.setObjectName("AppTitle")
        title.setTextFormat(Qt.TextFormat.RichText)
        brand.addWidget(logo)
        brand.addWidget(title)
        brand.addStretch(1)
        lay.addLayout(brand)
        tagline = QLabel("Super-resolution on your own machine")
        tagline.setObjectName("Muted")
        lay.addWidget(tagline)
        lay.addSpacing(12)

        # model
        lay.addWidget(_section("Model"))
        self.model_combo = QComboBox()
        self.model_combo.setObjectName("ModelCombo")
        lay.addWidget(self.model_combo)
        self.model_description = QLabel()
        self.model_description.setObjectName("Muted")
        self.model_description.setWordWrap(True)
        self.model_description.setMinimumHeight(34)
        self.model_description.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        lay.addWidget(self.model_description)
        lay.addSpacing(6)

        # scale
        lay.addWidget(_section("Scale"))
        scale_row = QHBoxLayout()
        scale_row.setSpacing(0)
        self.scale_group = QButtonGroup(self)
        self.scale_buttons: dict[int, QPushButton] = {}
        for i, scale in enumerate(SCALES):
            b = QPushButton(f"{scale}×")
            b.setCheckable(True)
            b.setObjectName("Segment")
            b.setProperty(
                "position", "first" if i == 0 else "last" if i == len(SCALES) - 1 else "middle"
            )
            b.setMinimumHeight(32)
            self.scale_group.addButton(b, scale)
            self.scale_buttons[scale] = b
            scale_row.addWidget(b)
        lay.addLayout(scale_row)
        lay.addSpacing(6)

        # denoise (families with levels only; the levels the chosen scale ships)
        self.denoise_section = _section("Denoise")
        lay.addWidget(self.denoise_section)
        self.denoise_combo = QComboBox()
        self.denoise_combo.setObjectName("DenoiseCombo")
        self.denoise_combo.setToolTip(
            "Noise reduction, numbered as the model's reference tool numbers it"
        )
        lay.addWidget(self.denoise_combo)
        lay.addSpacing(10)

        # format
        lay.addWidget(_section("Output format"))
        fmt_row = QHBoxLayout()
        self.format_combo = QComboBox()
        for fmt in FORMATS:
            self.format_combo.addItem(_FORMAT_LABELS[fmt], fmt)
        fmt_row.addWidget(self.format_combo, 1)
        lay.addLayout(fmt_row)
        q_row = QHBoxLayout()
        self.quality_label = QLabel("Quality")
        self.quality_label.setObjectName("Muted")
        self.quality_slider = QSlider(Qt.Orientation.Horizontal)
        self.quality_slider.setRange(1, 100)
        self.quality_spin = QSpinBox()
        self.quality_spin.setRange(1, 100)
        self.quality_spin.setFixedWidth(64)
        q_row.addWidget(self.quality_label)
        q_row.addWidget(self.quality_slider, 1)
        q_row.addWidget(self.quality_spin)
        lay.addLayout(q_row)
        lay.addSpacing(6)

        # output folder
        lay.addWidget(_section("Save to"))
        out_row = QHBoxLayout()
        out_row.setSpacing(6)
        self.output_edit = QLineEdit()
        self.output_edit.setReadOnly(True)
        self.output_edit.setPlaceholderText("Beside each input")
        self.output_edit.setToolTip("Beside each input image")
        self.output_browse = QPushButton("Browse…")
        self.output_browse.setObjectName("CompactButton")
        self.output_reset = QToolButton()
        self.output_reset.setText("✕")
        self.output_reset.setToolTip("Save beside each input image")
        out_row.addWidget(self.output_edit, 1)
        out_row.addWidget(self.output_reset)
        out_row.addWidget(self.output_browse)
        lay.addLayout(out_row)
        lay.addSpacing(10)

        # device
        lay.addWidget(_section("Device"))
        self.device_combo = QComboBox()
        self.device_combo.addItem("Auto (best available)", "auto")
        lay.addWidget(self.device_combo)
        lay.addSpacing(6)

        # advanced
        self.advanced_toggle = QToolButton()
        self.advanced_toggle.setObjectName("Disclosure")
        self.advanced_toggle.setText("Advanced")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.setArrowType(Qt.ArrowType.RightArrow)
        lay.addWidget(self.advanced_toggle)
        self.advanced_box = QWidget()
        adv = QVBoxLayout(self.advanced_box)
        adv.setContentsMargins(14, 0, 0, 0)
        tile_row = QHBoxLayout()
        tile_label = QLabel("Tile size")
        tile_label.setToolTip("Input pixels per tile side. Smaller tiles use less memory.")
        self.tile_spin = QSpinBox()
        self.tile_spin.setRange(0, 4096)
        self.tile_spin.setSingleStep(32)
        self.tile_spin.setSpecialValueText("Auto")
        self.tile_spin.setSuffix(" px")
        tile_row.addWidget(tile_label)
        tile_row.addStretch(1)
        tile_row.addWidget(self.tile_spin)
        adv.addLayout(tile_row)
        self.tta_check = QCheckBox("TTA (8× slower, slightly cleaner)")
        self.overwrite_check = QCheckBox("Overwrite existing results")
        adv.addWidget(self.tta_check)
        adv.addWidget(self.overwrite_check)
        self.advanced_box.setVisible(False)
        lay.addWidget(self.advanced_box)

        lay.addStretch(1)

        bottom = QWidget()
        bottom.setObjectName("SidebarBottom")
        outer.addWidget(bottom)
        lay = QVBoxLayout(bottom)
        lay.setContentsMargins(20, 8, 20, 18)
        lay.setSpacing(6)

        # progress
        self.current_label = QLabel("Current image")
        self.current_label.setObjectName("Muted")
        self.item_progress = QProgressBar()
        self.item_progress.setObjectName("ItemProgress")
        self.item_progress.setRange(0, 100)
        self.item_progress.setTextVisible(False)
        self.overall_label = QLabel("All images")
        self.overall_label.setObjectName("Muted")
        self.overall_progress = QProgressBar()
        self.overall_progress.setObjectName("OverallProgress")
        self.overall_progress.setRange(0, 100)
        self.overall_progress.setTextVisible(False)
        for w in (
            self.current_label,
            self.item_progress,
            self.overall_label,
            self.overall_progress,
        ):
            lay.addWidget(w)
        lay.addSpacing(10)

        self.start_button = QPushButton("Upscale")
        self.start_button.setObjectName("PrimaryButton")
        self.start_button.setMinimumHeight(46)
        self.start_button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        lay.addWidget(self.start_button)
        run_row = QHBoxLayout()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip(
            "Stop the current image (between tiles); keep the rest queued"
        )
        self.clear_rest_button = QPushButton("Cancel all")
        self.clear_rest_button.setToolTip("Stop the current image and clear the rest of the queue")
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.clear_rest_button)
        lay.addLayout(run_row)

        self._wire()

    def _wire(self) -> None:
        """Keep the panel's own widgets consistent and report edits."""
        self.quality_slider.valueChanged.connect(self.quality_spin.setValue)
        self.quality_spin.valueChanged.connect(self.quality_slider.setValue)
        self.advanced_toggle.toggled.connect(self._toggle_advanced)
        self.format_combo.currentIndexChanged.connect(self._update_quality_enabled)
        self.output_browse.clicked.connect(self.browse_output_requested)
        self.start_button.clicked.connect(self.start_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.clear_rest_button.clicked.connect(self.cancel_all_requested)
        self.output_reset.clicked.connect(lambda: self.set_output_dir(""))
        self.model_combo.currentIndexChanged.connect(self._on_model_changed)
        self.scale_group.idClicked.connect(lambda *_: self._update_denoise())
        for signal in (
            self.model_combo.currentIndexChanged,
            self.scale_group.idClicked,
            self.denoise_combo.currentIndexChanged,
            self.format_combo.currentIndexChanged,
            self.quality_spin.valueChanged,
            self.device_combo.currentIndexChanged,
            self.tile_spin.valueChanged,
            self.tta_check.toggled,
            self.overwrite_check.toggled,
        ):
            signal.connect(lambda *_: self.changed.emit())

    def _toggle_advanced(self, shown: bool) -> None:
        self.advanced_box.setVisible(shown)
        self.advanced_toggle.setArrowType(
            Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow
        )

    def _update_quality_enabled(self) -> None:
        lossy = self.format_combo.currentData() in ("jpg", "webp")
        for w in (self.quality_label, self.quality_slider, self.quality_spin):
            w.setEnabled(lossy)

    def _on_model_changed(self) -> None:
        entry: ModelEntry | None = self.model_combo.currentData()
        self.model_description.setText(entry.description if entry else "")
        for scale, button in self.scale_buttons.items():
            button.setEnabled(entry.scale_allowed(scale) if entry else scale > 1)
        checked = self.scale_group.checkedId()
        if checked not in self.scale_buttons or not self.scale_buttons[checked].isEnabled():
            enabled = [s for s, b in self.scale_buttons.items() if b.isEnabled()]
            native = entry.native_scales if entry else ()
            pick = [s for s in enabled if s in native] or enabled
            if pick:  # the largest native scale, else the largest allowed
                self.scale_buttons[pick[-1]].setChecked(True)
        self._update_denoise()

    def _update_denoise(self, want: int | None = None) -> None:
        """Offer the chosen family's denoise levels at the chosen scale, keeping the current
        level (or ``want``) when it is offered, else the family's plain level, else the
        first; hidden for families without levels."""
        entry: ModelEntry | None = self.model_combo.currentData()
        scale = self.scale_group.checkedId()
        levels = entry.denoise_levels(scale) if entry and scale > 0 else ()
        keep = want if want is not None else self.denoise_combo.currentData()
        self.denoise_combo.blockSignals(True)
        self.denoise_combo.clear()
        for level in levels:
            assert entry is not None
            self.denoise_combo.addItem(entry.denoise_text(level), level)
        if levels:
            assert entry is not None
            choice = next((lv for lv in (keep, entry.default_denoise) if lv in levels), levels[0])
            self.denoise_combo.setCurrentIndex(levels.index(choice))
        self.denoise_combo.blockSignals(False)
        self.denoise_section.setVisible(bool(levels))
        self.denoise_combo.setVisible(bool(levels))

    def denoise(self) -> int | None:
        """The chosen denoise level; None for families without levels."""
        if not self.denoise_combo.count():
            return None
        level = self.denoise_combo.currentData()
        return None if level is None else int(level)

    # --- content -------------------------------------------------------------------------

    def set_models(self, entries: list[ModelEntry]) -> None:
        """Fill the model picker (keeps the current choice when it is still listed)."""
        current = self.model_name()
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for entry in entries:
            self.model_combo.addItem(entry.label, entry)
            self.model_combo.setItemData(
                self.model_combo.count() - 1, entry.description, Qt.ItemDataRole.ToolTipRole
            )
        self.model_combo.blockSignals(False)
        self.set_model_name(current)

    def set_devices(self, choices: list[DeviceChoice]) -> None:
        """Fill the device picker ("auto" first), keeping the current choice when listed."""
        current = self.device_combo.currentData() or "auto"
        self.device_combo.blockSignals(True)
        self.device_combo.clear()
        for choice in choices:
            self.device_combo.addItem(choice.label, choice.value)
        self.device_combo.blockSignals(False)
        self._select_device(current)

    def _select_device(self, value: str) -> None:
        index = self.device_combo.findData(value)
        if index < 0:
            # remembered device not (yet) listed: keep it selectable until the probe says
            label = f"GPU {value}" if value.isdigit() else "All GPUs" if value == "all" else value
            self.device_combo.addItem(label, value)
            index = self.device_combo.count() - 1
        self.device_combo.setCurrentIndex(index)

    def model_name(self) -> str:
        """The selected model's name ('' when the list is empty)."""
        entry: ModelEntry | None = self.model_combo.currentData()
        return entry.name if entry else ""

    def set_model_name(self, name: str) -> None:
        """Select a model by name (the first one when unknown)."""
        for i in range(self.model_combo.count()):
            if self.model_combo.itemData(i).name == name:
                self.model_combo.setCurrentIndex(i)
                break
        else:
            if self.model_combo.count():
                self.model_combo.setCurrentIndex(0)
        self._on_model_changed()

    def output_dir(self) -> str:
        """The chosen output folder; '' means beside each input."""
        return self.output_edit.text()

    def set_output_dir(self, folder: str) -> None:
        """Show an output folder ('' = beside each input) and report the change."""
        if folder != self.output_edit.text():
            self.output_edit.setText(folder)
            self.output_edit.setToolTip(folder or "Beside each input image")
            self.output_reset.setEnabled(bool(folder))
            self.changed.emit()
        self.output_reset.setEnabled(bool(folder))

    # --- values --------------------------------------------------------------------------

    def values(self, base: GuiSettings | None = None) -> GuiSettings:
        """The panel's choices laid over ``base`` (window geometry etc. come from there)."""
        s = GuiSettings() if base is None else GuiSettings(**vars(base))
        s.model = self.model_name() or s.model
        s.scale = self.scale_group.checkedId() if self.scale_group.checkedId() > 0 else s.scale
        s.denoise = self.denoise()
        s.format = self.format_combo.currentData() or s.format
        s.quality = self.quality_spin.value()
        s.output_dir = self.output_dir()
        s.device = self.device_combo.currentData() or "auto"
        s.tile = self.tile_spin.value()
        s.tta = self.tta_check.isChecked()
        s.overwrite = self.overwrite_check.isChecked()
        return s

    def apply(self, s: GuiSettings) -> None:
        """Show ``s`` without emitting ``changed``."""
        self.blockSignals(True)
        try:
            self.set_model_name(s.model)
            if s.scale in self.scale_buttons and self.scale_buttons[s.scale].isEnabled():
                self.scale_buttons[s.scale].setChecked(True)
            self._update_denoise(want=s.denoise)
            self.format_combo.setCurrentIndex(max(0, self.format_combo.findData(s.format)))
            self.quality_spin.setValue(s.quality)
            self.set_output_dir(s.output_dir)
            self._select_device(s.device)
            self.tile_spin.setValue(s.tile)
            self.tta_check.setChecked(s.tta)
            self.overwrite_check.setChecked(s.overwrite)
            self._update_quality_enabled()
        finally:
            self.blockSignals(False)

    def set_running(self, running: bool, has_queued: bool) -> None:
        """Enable the run buttons that make sense now."""
        self.start_button.setEnabled(not running and has_queued)
        self.start_button.setText("Upscaling…" if running else "Upscale")
        self.cancel_button.setEnabled(running)
        self.clear_rest_button.setEnabled(running or has_queued)

    def set_current_image(self, name: str | None) -> None:
        """Name the image being upscaled (None: none)."""
        self.current_label.setText(f"Current image: {name}" if name else "Current image")

    def set_item_progress(self, percent: int) -> None:
        """The current image's bar, 0..100."""
        self.item_progress.setValue(percent)

    def set_overall_progress(self, percent: int, text: str) -> None:
        """The batch's bar, 0..100, and its caption."""
        self.overall_progress.setValue(percent)
        self.overall_label.setText(text)
