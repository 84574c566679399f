"""The only place that imports guestfs: the appliance (launch, drives, accel, watchdog), the persist
filesystem, the image header probe that runs before qemu sees a file, and the sample disk. Also the one runner
of qemu's image tool (qemuimg: copies, overlays, conversions)."""
