"""Run generated C on emulated Cortex-M cores (qemu-system-arm, bare metal, semihosting).

`qemu` builds an ELF from C sources plus the harness in firmware_templates/qemu/ and runs it;
`bench` counts guest instructions of the model step and the feature front end.
"""
