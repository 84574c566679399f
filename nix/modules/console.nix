# The console on the first serial port: scripts/start.sh runs QEMU with -nographic, which connects that
# port to the terminal. The last console= is /dev/console, so kernel messages, systemd's status and the
# login prompt (serial-getty@ttyS0, started by systemd's getty generator) appear there; tty0 keeps a
# screen console for QEMU windows and other hypervisors.
{ ... }:
{
  boot.kernelParams = [
    "console=tty0"
    "console=ttyS0,115200"
  ];
}
