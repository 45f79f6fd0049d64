"""The window's look: Fusion, a dark palette and one style sheet."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

__all__ = ["ACCENT", "apply_theme"]

ACCENT = "#7c6cff"

_COLORS = {
    "window": "#16181d",
    "base": "#1b1e24",
    "panel": "#1f2229",
    "border": "#2b2f38",
    "text": "#e8eaf0",
    "muted": "#8a92a3",
}

_STYLE = """
QMainWindow, QWidget#QueueColumn, QWidget#CompareColumn { background: %(window)s; }
QFrame#Sidebar { background: %(panel)s; border-right: 1px solid %(border)s; }
QScrollArea#SidebarScroll, QWidget#SidebarContent, QWidget#SidebarBottom { background: transparent; }
QLabel { color: %(text)s; }
QLabel#Muted { color: %(muted)s; }
QLabel:disabled { color: #5b6273; }
QLabel#AppTitle { font-size: 17px; }
QLabel#Logo { color: %(accent)s; font-size: 20px; }
QLabel#SectionLabel { color: %(muted)s; font-size: 10px; font-weight: bold; letter-spacing: 1px;
    padding-top: 4px; }
QLabel#PaneTitle { font-size: 15px; font-weight: bold; padding-right: 6px; }
QFrame#CompareFrame { border: 1px solid %(border)s; border-radius: 12px; background: %(base)s; }
QComboBox, QLineEdit, QSpinBox {
    background: %(base)s; border: 1px solid %(border)s; border-radius: 8px; padding: 6px 8px;
    color: %(text)s; min-height: 20px; selection-background-color: %(accent)s; }
QComboBox:hover, QLineEdit:hover, QSpinBox:hover { border-color: #3d4250; }
QComboBox:focus, QLineEdit:focus, QSpinBox:focus { border-color: %(accent)s; }
QComboBox { padding-right: 26px; }
QComboBox::drop-down { subcontrol-origin: padding; subcontrol-position: center right; border: none; width: 26px; }
QComboBox::down-arrow { image: url(%(icons)s/chevron-down.svg); width: 12px; height: 12px; }
QComboBox::down-arrow:on, QComboBox::down-arrow:hover { image: url(%(icons)s/chevron-down-hover.svg); }
QComboBox::down-arrow:disabled { image: url(%(icons)s/chevron-down-disabled.svg); }
QSpinBox { padding-right: 24px; }
QSpinBox::up-button, QSpinBox::down-button { subcontrol-origin: border; width: 22px; border: none; background: transparent; }
QSpinBox::up-button { subcontrol-position: top right; margin: 3px 3px 0 0; }
QSpinBox::down-button { subcontrol-position: bottom right; margin: 0 3px 3px 0; }
QSpinBox::up-button:hover, QSpinBox::down-button:hover { background: #2f3440; border-radius: 4px; }
QSpinBox::up-arrow { image: url(%(icons)s/chevron-up.svg); width: 10px; height: 10px; }
QSpinBox::up-arrow:hover { image: url(%(icons)s/chevron-up-hover.svg); }
QSpinBox::up-arrow:disabled, QSpinBox::up-arrow:off { image: url(%(icons)s/chevron-up-disabled.svg); }
QSpinBox::down-arrow { image: url(%(icons)s/chevron-down.svg); width: 10px; height: 10px; }
QSpinBox::down-arrow:hover { image: url(%(icons)s/chevron-down-hover.svg); }
QSpinBox::down-arrow:disabled, QSpinBox::down-arrow:off { image: url(%(icons)s/chevron-down-disabled.svg); }
QPushButton#CompactButton { padding: 7px 10px; }
QComboBox QAbstractItemView { background: %(base)s; border: 1px solid %(border)s;
    selection-background-color: #2d2a48; outline: none; padding: 4px; }
QPushButton { background: #272b34; border: 1px solid %(border)s; border-radius: 8px;
    padding: 7px 14px; color: %(text)s; }
QPushButton:hover { background: #2f3440; }
QPushButton:pressed { background: #252933; }
QPushButton:disabled { color: #5b6273; background: #1f2229; }
QPushButton#PrimaryButton {
    border: none; border-radius: 10px; font-size: 15px; font-weight: bold; color: white;
    background: qlineargradient(x1:0, y1:0, x2:1, y2:0, stop:0 #7c6cff, stop:1 #d05ce3); }
QPushButton#PrimaryButton:hover {
    background: qlineargradient(x1:0, y1:0, x2:1, y2:0, stop:0 #8c7eff, stop:1 #db70ec); }
QPushButton#PrimaryButton:disabled { background: #2c2942; color: #8c86b5; }
QPushButton#Segment { border-radius: 0; margin: 0; }
QPushButton#Segment[position="first"] { border-top-left-radius: 8px; border-bottom-left-radius: 8px; }
QPushButton#Segment[position="last"] { border-top-right-radius: 8px; border-bottom-right-radius: 8px; }
QPushButton#Segment:checked { background: %(accent)s; border-color: %(accent)s; color: white;
    font-weight: bold; }
QPushButton#FlatButton, QPushButton#ToolbarButton { padding: 5px 12px; }
QPushButton#FlatButton { background: transparent; border: none; color: %(muted)s; }
QPushButton#FlatButton:hover { color: %(text)s; }
QToolButton { background: transparent; border: none; color: %(muted)s; padding: 4px; }
QToolButton:hover { color: %(text)s; }
QToolButton#Disclosure { color: %(text)s; font-weight: bold; padding-left: 0; }
QCheckBox { color: %(text)s; spacing: 8px; }
QProgressBar { background: #2a2e38; border: none; border-radius: 3px; max-height: 6px; }
QProgressBar::chunk { border-radius: 3px;
    background: qlineargradient(x1:0, y1:0, x2:1, y2:0, stop:0 #7c6cff, stop:1 #d05ce3); }
QSlider::groove:horizontal { height: 4px; background: #2f3440; border-radius: 2px; }
QSlider::sub-page:horizontal { background: %(accent)s; border-radius: 2px; }
QSlider::handle:horizontal { background: white; width: 14px; height: 14px; margin: -5px 0;
    border-radius: 7px; }
QSlider::handle:horizontal:disabled { background: #5b6273; }
QSlider::sub-page:horizontal:disabled { background: #3a3f4b; }
QComboBox:disabled, QLineEdit:disabled, QSpinBox:disabled { color: #5b6273; background: #1d2025; }
QListView#QueueView { background: transparent; border: none; outline: none; }
QSplitter::handle { background: %(window)s; width: 2px; }
QStatusBar { background: %(panel)s; color: %(muted)s; border-top: 1px solid %(border)s; }
QStatusBar QLabel { padding: 0 8px; }
QMenuBar { background: %(panel)s; color: %(text)s; border-bottom: 1px solid %(border)s; }
QMenuBar::item:selected { background: #2d2a48; }
QMenu { background: %(panel)s; color: %(text)s; border: 1px solid %(border)s; padding: 4px; }
QMenu::item { padding: 6px 22px; border-radius: 6px; }
QMenu::item:selected { background: #2d2a48; }
QMenu::item:disabled { color: #5b6273; }
QToolTip { background: #0f1115; color: %(text)s; border: 1px solid %(border)s; padding: 6px; }
QScrollBar:vertical { background: transparent; width: 10px; margin: 2px; }
QScrollBar::handle:vertical { background: #343945; border-radius: 4px; min-height: 30px; }
QScrollBar::add-line, QScrollBar::sub-line { height: 0; }
"""


def apply_theme(app: QApplication) -> None:
    """Fusion with a dark palette and the app's style sheet."""
    app.setStyle("Fusion")
    pal = QPalette()
    c = {k: QColor(v) for k, v in _COLORS.items()}
    pal.setColor(QPalette.ColorRole.Window, c["window"])
    pal.setColor(QPalette.ColorRole.WindowText, c["text"])
    pal.setColor(QPalette.ColorRole.Base, c["base"])
    pal.setColor(QPalette.ColorRole.AlternateBase, c["panel"])
    pal.setColor(QPalette.ColorRole.Text, c["text"])
    pal.setColor(QPalette.ColorRole.Button, QColor("#272b34"))
    pal.setColor(QPalette.ColorRole.ButtonText, c["text"])
    pal.setColor(QPalette.ColorRole.Highlight, QColor(ACCENT))
    pal.setColor(QPalette.ColorRole.HighlightedText, QColor("white"))
    pal.setColor(QPalette.ColorRole.ToolTipBase, QColor("#0f1115"))
    pal.setColor(QPalette.ColorRole.ToolTipText, c["text"])
    pal.setColor(QPalette.ColorRole.PlaceholderText, c["muted"])
    for role in (
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
        QPalette.ColorRole.WindowText,
    ):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor("#5b6273"))
    app.setPalette(pal)
    font = QFont(app.font())
    if font.pointSizeF() < 10:
        font.setPointSizeF(10)
    app.setFont(font)
    icons = (Path(__file__).resolve().parent / "icons").as_posix()  # chevrons (package data)
    app.setStyleSheet(_STYLE % {**_COLORS, "accent": ACCENT, "icons": icons})
