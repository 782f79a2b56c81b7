"""Arcade rendering of the headless core: views, camera, sprites, HUD, screenshots."""
